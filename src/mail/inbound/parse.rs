//! Raw RFC 5322 bytes → [`ParsedMail`], with mail-parser doing all of MIME.
//!
//! Text is NFC-normalised: windows-1258 mail (Vietnamese legacy) decodes to combining
//! diacritics, and rules and searches must see "xác nhận" however it was encoded. HTML
//! is kept only after ammonia has sanitised it.
//!
//! Mail from the wild is read as other mail readers read it: framing they tolerate is
//! made standard first ([`framed`]), a sender without an address is still a sender, and
//! only input with no mail header at all is refused. Every value is bounded before it
//! reaches the database or the HTML sanitiser; the raw bytes keep everything.

use std::borrow::Cow;
use std::cell::Cell;

use chrono::NaiveDateTime;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer};
use mail_parser::{HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};

/// Subjects, names and addresses longer than this are cut in the stored row.
const MAX_LINE_CHARS: usize = 1000;
/// Attachment file names longer than this are cut (file systems stop at 255).
const MAX_FILE_NAME_CHARS: usize = 255;
/// A Message-ID longer than a header line may be (RFC 5322 §2.1.1) is not one; it also
/// keeps the unique index within PostgreSQL's limit on index rows.
const MAX_ID_BYTES: usize = 998;
/// Threading needs the root and the latest references only (how clients trim them,
/// RFC 5322 §3.6.4); a hostile list of thousands would overflow query parameters.
const MAX_REFERENCES: usize = 100;
/// HTML nested deeper than browsers build (Chromium stops at 512) is not sanitised:
/// html5ever's tree builder is quadratic in nesting depth (10,000 nested `<div>`: 10 s).
const MAX_HTML_DEPTH: usize = 512;
/// HTML beyond this is cut before sanitising; the raw message keeps the rest.
const MAX_HTML_BYTES: usize = 2 * 1024 * 1024;

pub const EMPTY: &str = "Thư rỗng.";
pub const NO_HEADERS: &str =
    "Không tìm thấy phần tiêu đề của thư (From, To, Subject, Date…): tệp này không phải là một thư.";

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

/// Body text: NFC, without NUL (PostgreSQL text refuses it).
fn text(s: &str) -> String {
    let s = crate::fmt::nfc(s);
    if s.contains('\0') { s.replace('\0', "") } else { s.into_owned() }
}

/// A one-line value: NFC, control characters as spaces, trimmed, at most `max` chars.
fn line(s: &str, max: usize) -> String {
    let s: String = crate::fmt::nfc(s).chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect();
    s.trim().to_string()
}

fn id(s: &str) -> Option<String> {
    let s = line(s.trim().trim_matches(['<', '>']), usize::MAX);
    (!s.is_empty() && s.len() <= MAX_ID_BYTES).then_some(s)
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    let mut all: Vec<String> = match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
    .iter()
    .filter_map(|s| id(s))
    .collect();
    if all.len() > MAX_REFERENCES {
        all.drain(1..all.len() - (MAX_REFERENCES - 1));
    }
    all
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    a.map(|a| a.iter().filter_map(|x| x.address()).map(|s| line(s, MAX_LINE_CHARS).to_lowercase()).collect())
        .unwrap_or_default()
}

/// (address, display name) of a sender field: the first mailbox with an address, or
/// only a name when none has one (`From: Moderator-Address`, `"Tên" <>`).
fn first_addr(a: Option<&mail_parser::Address<'_>>) -> (String, String) {
    let Some(a) = a else {
        return Default::default();
    };
    let with_addr = a.iter().find(|x| x.address().is_some_and(|s| !s.trim().is_empty()));
    match with_addr.or_else(|| a.first()) {
        Some(x) => (
            x.address().map(|s| line(s, MAX_LINE_CHARS).to_lowercase()).unwrap_or_default(),
            x.name().map(|n| line(n, MAX_LINE_CHARS)).unwrap_or_default(),
        ),
        None => Default::default(),
    }
}

/// The bytes mail-parser reads: framing that other readers tolerate made standard. A
/// UTF-8 byte-order mark and blank lines before the headers would otherwise end the
/// header block at once, and old Mac mail ends lines with a bare CR. The stored raw
/// bytes are never these.
pub fn framed(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut start = if raw.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    loop {
        let rest = &raw[start..];
        let blanks = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        match (rest.get(blanks), rest.get(blanks + 1)) {
            (Some(b'\r'), Some(b'\n')) => start += blanks + 2,
            (Some(b'\n' | b'\r'), _) => start += blanks + 1,
            _ => break,
        }
    }
    let bytes = &raw[start..];
    // Bare CR as the line end only when the first line ends so: a stray CR in the body
    // of LF or CRLF mail (binary parts) is content, not a line break.
    let first_end = bytes.iter().position(|b| matches!(b, b'\n' | b'\r'));
    let cr_lines = first_end.is_some_and(|i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
    if !cr_lines {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (i, b) in bytes.iter().enumerate() {
        out.push(if *b == b'\r' && bytes.get(i + 1) != Some(&b'\n') { b'\n' } else { *b });
    }
    Cow::Owned(out)
}

/// Counts how deep elements nest, from html5ever's tokenizer (linear, unlike its tree
/// builder). Void elements and those whose end tag may be left out (`<p>`, `<li>`,
/// `<td>`…) do not deepen the tree, so sloppy but ordinary HTML stays shallow.
#[derive(Default)]
struct Depth {
    now: Cell<usize>,
    max: Cell<usize>,
}

fn deepens(tag: &Tag) -> bool {
    !matches!(
        &*tag.name,
        "area"
            | "base"
            | "basefont"
            | "bgsound"
            | "br"
            | "col"
            | "embed"
            | "frame"
            | "hr"
            | "img"
            | "input"
            | "keygen"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
            | "p"
            | "li"
            | "dt"
            | "dd"
            | "tr"
            | "td"
            | "th"
            | "option"
            | "optgroup"
            | "rb"
            | "rp"
            | "rt"
            | "rtc"
            | "tbody"
            | "thead"
            | "tfoot"
            | "colgroup"
            | "caption"
            | "html"
            | "head"
            | "body"
    )
}

impl TokenSink for Depth {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        if let Token::TagToken(tag) = token
            && deepens(&tag)
        {
            match tag.kind {
                TagKind::StartTag if !tag.self_closing => {
                    self.now.set(self.now.get() + 1);
                    self.max.set(self.max.get().max(self.now.get()));
                }
                TagKind::EndTag => self.now.set(self.now.get().saturating_sub(1)),
                TagKind::StartTag => {}
            }
        }
        TokenSinkResult::Continue
    }
}

fn html_depth(html: &str) -> usize {
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(Depth::default(), Default::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.max.get()
}

/// Sanitised HTML for display, or None when it is too deep to sanitise in bounded time
/// (the text body is still shown).
fn safe_html(html: &str) -> Option<String> {
    let mut end = html.len().min(MAX_HTML_BYTES);
    while !html.is_char_boundary(end) {
        end -= 1;
    }
    let html = &html[..end];
    if html_depth(html) > MAX_HTML_DEPTH {
        return None;
    }
    Some(text(&ammonia::clean(&text(html))))
}

/// Parses a message; `Err` carries the Vietnamese reason it cannot be read.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, String> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(EMPTY.into());
    }
    let bytes = framed(raw);
    let msg = MessageParser::default().parse(&bytes[..]).ok_or_else(|| NO_HEADERS.to_string())?;
    // Lines that merely contain a colon ("Ghi chú: …", binary noise) are not a header
    // block; one field mail defines (From, Date, Content-Type, Received…) is.
    if msg.headers().iter().all(|h| matches!(h.name, HeaderName::Other(_))) {
        return Err(NO_HEADERS.into());
    }
    let (mut from_addr, from_name) = first_addr(msg.from());
    if from_addr.is_empty() {
        // RFC 5322 §3.6.2: Sender is the mailbox that actually sent it.
        from_addr = first_addr(msg.sender()).0;
    }
    let subject = msg.subject().map(|s| line(s, MAX_LINE_CHARS)).unwrap_or_default();
    let message_id = msg.message_id().and_then(id);
    let sent_at = msg.date().and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0)).map(|d| d.naive_utc());
    let body = msg.body_text(0).map(|t| text(&t)).unwrap_or_default();
    let html = (msg.html_body_count() > 0).then(|| msg.body_html(0)).flatten().and_then(|h| safe_html(&h));

    let mut attachments = Vec::new();
    let mut forwarded = None;
    for part in msg.attachments() {
        let content_type = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(sub) => format!("{}/{}", c.ctype(), sub),
                None => c.ctype().to_string(),
            })
            .map(|c| line(&c, MAX_LINE_CHARS))
            .unwrap_or_else(|| "application/octet-stream".into());
        let file_name = part.attachment_name().map(|n| line(n, MAX_FILE_NAME_CHARS)).filter(|n| !n.is_empty());
        if let PartType::Message(inner) = &part.body {
            let (addr, name) = first_addr(inner.from());
            if forwarded.is_none() {
                forwarded = Some(Forwarded {
                    from_addr: addr,
                    from_name: name,
                    subject: inner.subject().map(|s| line(s, MAX_LINE_CHARS)).unwrap_or_default(),
                    text: inner.body_text(0).map(|t| text(&t)).unwrap_or_default(),
                });
            }
            attachments.push(ParsedAttachment {
                name: file_name.unwrap_or_else(|| "thu-chuyen-tiep.eml".into()),
                content_type: "message/rfc822".into(),
                bytes: inner.raw_message().to_vec(),
            });
            continue;
        }
        let name = file_name.unwrap_or_else(|| format!("tep-dinh-kem-{}", attachments.len() + 1));
        attachments.push(ParsedAttachment { name, content_type, bytes: attachment_bytes(&msg, part) });
    }
    if forwarded.is_none() {
        forwarded = super::classify::find_forwarded(&body);
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
        text: body,
        html,
        attachments,
        forwarded,
    })
}

/// The file as its sender attached it. mail-parser decodes a part declared `text/*` into a
/// string (lossily, by its charset), which garbles a binary file sent under a text type
/// and re-encodes a text file's own charset; an attachment is a file, so a base64 part is
/// decoded from the raw message instead.
fn attachment_bytes(msg: &mail_parser::Message<'_>, part: &mail_parser::MessagePart<'_>) -> Vec<u8> {
    let is_text = matches!(part.body, PartType::Text(_) | PartType::Html(_));
    if is_text && part.encoding == mail_parser::Encoding::Base64 {
        let raw = msg.raw_message.get(part.offset_body as usize..part.offset_end as usize);
        if let Some(bytes) = raw.and_then(mail_parser::decoders::base64::base64_decode) {
            return bytes;
        }
    }
    part.contents().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> ParsedMail {
        parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{e}: {raw:.80}"))
    }

    #[test]
    fn an_attachment_is_kept_byte_for_byte_whatever_type_it_declares() {
        use base64::Engine;
        let binary: Vec<u8> = (0..=255u8).chain([0xC3, 0x28, 0xFF, 0x00]).collect();
        // A windows-1258 CSV ("Số tiền" with its own code points), declared as text.
        let cp1258 = b"S\xf4\xd2 ti\xd2n;100\r\n".to_vec();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let raw = format!(
            "From: a@vnpay.vn\r\nMessage-ID: <bin@test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nxem tệp\r\n\
             --b\r\nContent-Type: text/plain; name=\"du-lieu.bin\"\r\nContent-Disposition: attachment; filename=\"du-lieu.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --b\r\nContent-Type: text/csv; charset=windows-1258\r\nContent-Disposition: attachment; filename=\"sao-ke.csv\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(&binary),
            b64(&cp1258)
        );
        let mail = read(&raw);
        let file =
            |name: &str| &mail.attachments.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("{name}")).bytes;
        assert_eq!(file("du-lieu.bin"), &binary);
        assert_eq!(file("sao-ke.csv"), &cp1258);
    }

    #[test]
    fn framing_others_tolerate_is_made_standard() {
        assert_eq!(&*framed(b"\xEF\xBB\xBFFrom: a@b.vn\n\nx"), b"From: a@b.vn\n\nx");
        assert_eq!(&*framed(b"   \r\n\t\n\r\nFrom: a@b.vn\r\n\r\nx"), b"From: a@b.vn\r\n\r\nx");
        assert_eq!(&*framed(b"From: a@b.vn\rSubject: s\r\rx\ry"), b"From: a@b.vn\nSubject: s\n\nx\ny");
        // A CR inside an LF or CRLF message is content (a binary part), not a line end.
        assert_eq!(&*framed(b"From: a@b.vn\n\nx\ry"), b"From: a@b.vn\n\nx\ry");
        assert_eq!(&*framed(b"From: a@b.vn\r\n\r\nx\ry"), b"From: a@b.vn\r\n\r\nx\ry");
        assert!(matches!(framed(b"From: a@b.vn\n\nx"), Cow::Borrowed(_)), "ordinary mail is not copied");
    }

    #[test]
    fn blank_lines_bom_and_bare_cr_still_give_the_headers() {
        for raw in [
            " \nFrom: Lan <lan@momo.vn>\nSubject: Mở cổng\n\nNội dung",
            "\u{feff}From: Lan <lan@momo.vn>\nSubject: Mở cổng\n\nNội dung",
            "From: Lan <lan@momo.vn>\rSubject: Mở cổng\r\rNội dung",
        ] {
            let p = read(raw);
            assert_eq!((p.from_addr.as_str(), p.subject.as_str()), ("lan@momo.vn", "Mở cổng"), "{raw:?}");
            assert_eq!(p.text.trim(), "Nội dung");
        }
    }

    #[test]
    fn only_input_without_a_mail_header_is_unreadable() {
        assert_eq!(parse(b" \r\n\t").err().as_deref(), Some(EMPTY));
        assert_eq!(parse(b"this is not a mail \xff\xfe\n\nbody").err().as_deref(), Some(NO_HEADERS));
        // Colons alone do not make a header block.
        assert_eq!(parse("Ghi chú: gọi lại\nSố: 0912\n\nabc".as_bytes()).err().as_deref(), Some(NO_HEADERS));
        assert_eq!(parse(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR:\0").err().as_deref(), Some(NO_HEADERS));
        // A MIME fragment with a body is read, sender or not.
        let p = read("Content-Type: text/plain\n\nchỉ có nội dung");
        assert_eq!((p.from_addr.as_str(), p.text.as_str()), ("", "chỉ có nội dung"));
        let p = read("Date: Mon, 23 Nov 2026 08:00:00 +0700\n\nxin chào");
        assert!(p.sent_at.is_some() && p.text == "xin chào");
    }

    #[test]
    fn a_sender_without_an_address_keeps_its_name() {
        let p = read("From: Moderator-Address\nSubject: s\n\nx");
        assert_eq!((p.from_addr.as_str(), p.from_name.as_str()), ("", "Moderator-Address"));
        let p = read("From: \"=?utf-8?q?=C4=90=E1=BB=91i_t=C3=A1c?=\" <>\nSender: hub@vnpay.vn\n\nx");
        assert_eq!((p.from_addr.as_str(), p.from_name.as_str()), ("hub@vnpay.vn", "Đối tác"), "Sender stands in");
        let p = read("From: Nhóm MoMo:;, Lan <lan@momo.vn>\n\nx");
        assert_eq!(p.from_addr, "lan@momo.vn", "the first mailbox with an address");
    }

    #[test]
    fn values_are_bounded_and_fit_the_database() {
        let long_id = "x".repeat(MAX_ID_BYTES + 1);
        let p = read(&format!("From: a@b.vn\nMessage-ID: <{long_id}@b.vn>\n\nx"));
        assert_eq!(p.message_id, None, "an overlong Message-ID is not one");
        let ok_id = format!("{}@b.vn", "y".repeat(MAX_ID_BYTES - 5));
        assert_eq!(read(&format!("From: a@b.vn\nMessage-ID: <{ok_id}>\n\nx")).message_id, Some(ok_id));

        let refs: String = (0..5000).map(|i| format!(" <r{i}@b.vn>")).collect();
        let p = read(&format!("From: a@b.vn\nReferences:{refs}\n\nx"));
        assert_eq!(p.references.len(), MAX_REFERENCES);
        assert_eq!(p.references.first().map(String::as_str), Some("r0@b.vn"), "the root is kept");
        assert_eq!(p.references.last().map(String::as_str), Some("r4999@b.vn"), "and the latest");

        let p =
            read(&format!("From: a@b.vn\nSubject: =?utf-8?q?M=E1=BB=9F=09c=E1=BB=95ng=00?= {}\n\nx", "đ".repeat(5000)));
        assert!(p.subject.starts_with("Mở cổng "), "controls become spaces: {:?}", &p.subject[..20]);
        assert_eq!(p.subject.chars().count(), MAX_LINE_CHARS);

        let p = read("From: a@b.vn\nContent-Transfer-Encoding: quoted-printable\n\nLinkId=3D=00=00 xong");
        assert_eq!(p.text, "LinkId= xong", "PostgreSQL text takes no NUL");
    }

    #[test]
    fn html_too_deep_to_sanitise_is_left_to_the_text() {
        let mail = |html: String| format!("From: a@b.vn\nContent-Type: text/html; charset=utf-8\n\n{html}Xác nhận");
        let deep = read(&mail("<div>".repeat(MAX_HTML_DEPTH + 1)));
        assert_eq!(deep.html, None, "not handed to the quadratic tree builder");
        assert!(deep.text.contains("Xác nhận"), "the text is still read: {:?}", deep.text);
        let shallow = read(&mail("<div>".repeat(MAX_HTML_DEPTH - 1)));
        assert!(shallow.html.is_some_and(|h| h.contains("Xác nhận")));
        // Elements that close themselves or need no end tag do not count.
        let flat = read(&mail("<p>a<li>b<td>c<br><img src=x>".repeat(5000)));
        assert!(flat.html.is_some());
        assert_eq!(html_depth("<div><span></span><div/></div><b>"), 2);
    }

    #[test]
    fn deep_mime_nesting_is_read_on_a_small_stack() {
        let mut raw = b"From: a@b.vn\nSubject: nested\n".to_vec();
        for i in 0..5000 {
            raw.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes());
        }
        raw.extend_from_slice(b"Content-Type: text/plain\n\nbody\n");
        for _ in 0..5000 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\n\n");
        }
        // The worker threads' stack size (tokio's blocking pool: 2 MiB).
        let parsed = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || parse(&raw).map(|p| p.subject))
            .map(|h| h.join());
        assert!(matches!(parsed, Ok(Ok(Ok(ref s))) if s == "nested"), "{parsed:?}");
    }
}
