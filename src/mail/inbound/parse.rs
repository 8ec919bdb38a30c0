//! Raw RFC 5322 bytes → [`ParsedMail`], with mail-parser doing all of MIME.
//!
//! Text is NFC-normalised: windows-1258 mail (Vietnamese legacy) decodes to combining
//! diacritics, and rules and searches must see "xác nhận" however it was encoded. HTML
//! is kept only after ammonia has sanitised it.

use chrono::NaiveDateTime;
use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Default)]
pub struct ParsedAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A message forwarded inside this one (attached message/rfc822 or an inline block).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forwarded {
    pub from_addr: String,
    pub from_name: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct ParsedMail {
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from_addr: String,
    pub from_name: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: String,
    pub subject: String,
    pub sent_at: Option<NaiveDateTime>,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<ParsedAttachment>,
    pub forwarded: Option<Forwarded>,
}

fn nfc(s: &str) -> String {
    s.nfc().collect()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.trim().trim_matches(['<', '>']).to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.trim().trim_matches(['<', '>']).to_string()).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    a.map(|a| a.iter().filter_map(|x| x.address()).map(|s| s.trim().to_lowercase()).collect()).unwrap_or_default()
}

fn first_addr(a: Option<&mail_parser::Address<'_>>) -> (String, String) {
    a.and_then(|a| a.first())
        .map(|x| {
            (x.address().unwrap_or("").trim().to_lowercase(), x.name().map(nfc).unwrap_or_default().trim().to_string())
        })
        .unwrap_or_default()
}

/// Parses a message; `Err` carries the Vietnamese reason it cannot be read.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, String> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("Thư rỗng.".into());
    }
    let msg = MessageParser::default().parse(raw).ok_or_else(|| "Không phân tích được cấu trúc thư.".to_string())?;
    let (from_addr, from_name) = first_addr(msg.from());
    let subject = msg.subject().map(nfc).unwrap_or_default().trim().to_string();
    let message_id = msg.message_id().map(|s| s.trim().trim_matches(['<', '>']).to_string()).filter(|s| !s.is_empty());
    if from_addr.is_empty() && message_id.is_none() {
        return Err("Thiếu người gửi (From) và Message-ID: không phải một thư hợp lệ.".into());
    }
    let sent_at = msg.date().and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0)).map(|d| d.naive_utc());
    let text = msg.body_text(0).map(|t| nfc(&t)).unwrap_or_default();
    let html = (msg.html_body_count() > 0).then(|| msg.body_html(0)).flatten().map(|h| ammonia::clean(&nfc(&h)));

    let mut attachments = Vec::new();
    let mut forwarded = None;
    for part in msg.attachments() {
        let content_type = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(sub) => format!("{}/{}", c.ctype(), sub),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        if let PartType::Message(inner) = &part.body {
            let (addr, name) = first_addr(inner.from());
            if forwarded.is_none() {
                forwarded = Some(Forwarded {
                    from_addr: addr,
                    from_name: name,
                    subject: inner.subject().map(nfc).unwrap_or_default(),
                    text: inner.body_text(0).map(|t| nfc(&t)).unwrap_or_default(),
                });
            }
            let name = part.attachment_name().map(nfc).unwrap_or_else(|| "thu-chuyen-tiep.eml".into());
            attachments.push(ParsedAttachment {
                name,
                content_type: "message/rfc822".into(),
                bytes: inner.raw_message().to_vec(),
            });
            continue;
        }
        let name = part.attachment_name().map(nfc).unwrap_or_else(|| format!("tep-dinh-kem-{}", attachments.len() + 1));
        attachments.push(ParsedAttachment { name, content_type, bytes: part.contents().to_vec() });
    }
    if forwarded.is_none() {
        forwarded = super::classify::find_forwarded(&text);
    }
    Ok(ParsedMail {
        message_id,
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        from_addr,
        from_name,
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        reply_to: first_addr(msg.reply_to()).0,
        subject,
        sent_at,
        text,
        html,
        attachments,
        forwarded,
    })
}
