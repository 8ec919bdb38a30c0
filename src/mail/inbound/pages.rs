//! Page structs of the inbox templates (templates/mail/).

use askama::Template;

use super::classify::{Kind, Suggestions};
use super::handlers::InboxQuery;
use super::models::{AttachmentInfo, BlobInfo, InboxRow, MailMessage, RuleRow, Thread};
use super::service::{IngestReport, RULE_KINDS, status_label};
use crate::fmt::{Age, LocalTime};
use crate::hub::partners::Partner;
use crate::web::inline::Preview;
use crate::web::layout::Layout;

pub fn kind_label(code: &str) -> &'static str {
    Kind::from_code(code).label()
}

pub fn message_status_label(code: &str) -> &'static str {
    match code {
        "new" => "Cần xử lý",
        "not_relevant" => "Không liên quan",
        "attached" => "Đã gắn yêu cầu",
        _ => "Khác",
    }
}

pub fn size_label(bytes: &i64) -> String {
    match *bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{} KB", b / 1024),
        b => format!("{:.1} MB", b as f64 / 1_048_576.0).replace('.', ","),
    }
}

#[derive(Template)]
#[template(path = "mail/inbox.html")]
pub struct InboxPage {
    pub l: Layout,
    pub q: InboxQuery,
    pub rows: Vec<InboxRow>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    /// Every partner, for the filter.
    pub reference: std::sync::Arc<crate::hub::Reference>,
    pub problems: i64,
}

impl InboxPage {
    pub fn kinds(&self) -> [Kind; 5] {
        Kind::ALL
    }

    pub fn when(&self, r: &InboxRow) -> String {
        let t = r.sent_at.unwrap_or(r.created_at);
        format!("{} · {}", LocalTime(t), Age(t))
    }

    /// Mail from a stopped partner is kept and shown, marked so.
    pub fn partner_disabled(&self, code: &str) -> bool {
        self.reference.partners.iter().any(|p| p.code == code && p.is_disabled())
    }

    pub fn prev_link(&self) -> Option<String> {
        (self.page > 1).then(|| self.q.link_to_page(self.page - 1))
    }

    pub fn next_link(&self) -> Option<String> {
        (self.page < self.pages).then(|| self.q.link_to_page(self.page + 1))
    }
}

#[derive(Template)]
#[template(path = "mail/upload.html")]
pub struct UploadPage {
    pub l: Layout,
    pub reports: Vec<IngestReport>,
}

#[derive(Template)]
#[template(path = "mail/unreadable.html")]
pub struct UnreadablePage {
    pub l: Layout,
    pub blobs: Vec<BlobInfo>,
}

impl UnreadablePage {
    pub fn when(&self, b: &BlobInfo) -> LocalTime {
        LocalTime(b.received_at)
    }
}

#[derive(Template)]
#[template(path = "mail/message.html")]
pub struct MessagePage {
    pub l: Layout,
    pub message: MailMessage,
    pub thread: Thread,
    pub messages: Vec<MailMessage>,
    pub attachments: Vec<AttachmentInfo>,
    pub partners: Vec<Partner>,
    pub suggestions: Suggestions,
    /// The reader asked for the remote images of this conversation.
    pub show_images: bool,
    /// The attachments whose bytes are an image or a PDF, by attachment id.
    pub previews: Vec<(i64, Preview)>,
}

impl MessagePage {
    /// A message's HTML as shown, and how many remote images were held back.
    pub fn html_of(&self, m: &MailMessage) -> Option<MailHtml> {
        m.html_body.as_deref().map(|h| {
            let (html, blocked) = display_html(h, self.show_images);
            MailHtml { html, blocked }
        })
    }

    /// Whether an attachment is previewed as an image (`"image"`), a PDF (`"pdf"`) or not (`""`).
    pub fn preview_of(&self, a: &AttachmentInfo) -> &'static str {
        match self.previews.iter().find(|(id, _)| *id == a.id).map(|(_, p)| *p) {
            Some(Preview::Image(_)) => "image",
            Some(Preview::Pdf) => "pdf",
            None => "",
        }
    }

    pub fn partner_of(&self, m: &MailMessage) -> String {
        m.partner_id
            .and_then(|id| self.partners.iter().find(|p| p.id == id))
            .map(|p| {
                let stopped = if p.is_disabled() { " (đối tác đã ngừng dùng)" } else { "" };
                format!("{} – {}{stopped}", p.code, p.name)
            })
            .unwrap_or_else(|| "Chưa xác định".into())
    }

    pub fn when(&self, m: &MailMessage) -> String {
        m.sent_at.map(|t| LocalTime(t).to_string()).unwrap_or_else(|| "không rõ ngày".into())
    }

    pub fn attachments_of(&self, m: &MailMessage) -> Vec<&AttachmentInfo> {
        self.attachments.iter().filter(|a| a.message_id == m.id).collect()
    }
}

#[derive(Template)]
#[template(path = "mail/rules.html")]
pub struct RulesPage {
    pub l: Layout,
    pub rules: Vec<RuleRow>,
}

impl RulesPage {
    pub fn kinds(&self) -> [(&'static str, &'static str); 2] {
        RULE_KINDS
    }

    pub fn kind_name(&self, code: &str) -> &'static str {
        RULE_KINDS.iter().find(|(k, _)| *k == code).map(|(_, l)| *l).unwrap_or("?")
    }
}

pub fn blob_status_label(code: &str) -> &'static str {
    status_label(code)
}

pub struct MailHtml {
    pub html: String,
    /// Remote images held back.
    pub blocked: usize,
}

/// Mail HTML for the page. It was sanitised when the mail arrived; here remote images
/// (tracking pixels that tell the sender who read the mail, and when) are removed
/// unless the reader asked for them. The page's Content-Security-Policy blocks them
/// too; removing them keeps the page from showing broken images.
pub fn display_html(html: &str, show_remote: bool) -> (String, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let blocked = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = blocked.clone();
    let cleaned = ammonia::Builder::default()
        .attribute_filter(move |element, attribute, value| {
            let is_source = matches!((element, attribute), ("img", "src" | "srcset") | (_, "background"));
            let v = value.trim_start().to_ascii_lowercase();
            let remote = v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//");
            if !show_remote && is_source && remote {
                counter.fetch_add(1, Ordering::Relaxed);
                None
            } else {
                Some(value.into())
            }
        })
        .clean(html)
        .to_string();
    (cleaned, blocked.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::display_html;

    #[test]
    fn remote_images_wait_for_the_reader() {
        let html = r#"<p>Xin chào</p><img src="https://track.example/p.gif?u=1" alt="logo">"#;
        let (shown, blocked) = display_html(html, false);
        assert_eq!(blocked, 1);
        assert!(!shown.contains("track.example"), "{shown}");
        assert!(shown.contains("Xin chào") && shown.contains(r#"alt="logo""#), "the rest stays: {shown}");
        let (shown, blocked) = display_html(html, true);
        assert_eq!(blocked, 0);
        assert!(shown.contains("https://track.example/p.gif"), "{shown}");
    }
}
