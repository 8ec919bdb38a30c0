//! Pure classification helpers: folding Vietnamese text, normalising subjects,
//! finding forwarded blocks, extracting suggestions and deciding a message's kind.
//! Nothing here touches the database, so it is tested directly.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::parse::Forwarded;

/// Lower case, no diacritics, đ → d, single spaces: "Xác Nhận  Mở cổng" → "xac nhan mo cong".
pub fn fold(s: &str) -> String {
    fold_prefix(s, usize::MAX)
}

/// The first `limit` characters of [`fold`], reading `s` only as far as they need: a
/// line is tested for a label ("Từ:", "-----") without folding the whole of it.
pub fn fold_prefix(s: &str, limit: usize) -> String {
    // Final sigma lower-cases by its place in a word, which only the whole-string
    // lower-casing knows: such (Greek) text takes the long way.
    if s.contains('Σ') {
        let whole = fold_whole(s);
        return if limit == usize::MAX { whole } else { whole.chars().take(limit).collect() };
    }
    // Character by character, into one string: the marks are dropped anyway, so the
    // canonical reordering of a whole-string NFD changes nothing.
    let mut out = String::with_capacity(s.len().min(limit.saturating_mul(4)));
    let mut space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    };
    for c in s.chars() {
        // What is pushed stays as it is (what follows cannot change it), so once
        // `limit` characters are out the rest of `s` is not read. A byte count at
        // least `limit` is the cheap first test.
        if out.len() >= limit && out.chars().count() >= limit {
            break;
        }
        if c.is_ascii() {
            push(c.to_ascii_lowercase(), &mut out);
            continue;
        }
        unicode_normalization::char::decompose_canonical(c, |d| {
            if is_combining_mark(d) {
                return;
            }
            let d = if d == 'Đ' || d == 'đ' { 'd' } else { d };
            for l in d.to_lowercase() {
                push(l, &mut out);
            }
        });
    }
    // One letter may lower-case to two ("İ"): cut what went past the limit.
    if out.len() > limit
        && let Some((end, _)) = out.char_indices().nth(limit)
    {
        out.truncate(end);
    }
    out
}

/// [`fold`] by its definition: the whole string decomposed, marks dropped, then
/// lower-cased and its whitespace collapsed.
fn fold_whole(s: &str) -> String {
    let stripped: String = s
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| if c == 'Đ' || c == 'đ' { 'd' } else { c })
        .collect::<String>()
        .to_lowercase();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

static SUBJECT_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\[[^\]]{0,40}\]\s*|(?:re|fw|fwd|tl|tr|aw|sv|vs|wg|tra loi|chuyen tiep|phan hoi)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Thread keys longer than this are cut: enough to tell subjects apart, and within
/// PostgreSQL's limit on index rows whatever the script.
const MAX_THREAD_KEY_CHARS: usize = 200;

/// Subject without reply/forward prefixes and tags, folded: the thread key.
pub fn normalise_subject(subject: &str) -> String {
    let mut s = fold(subject);
    loop {
        let next = SUBJECT_PREFIX.replace(&s, "").to_string();
        if next == s {
            break;
        }
        s = next;
    }
    s.trim().chars().take(MAX_THREAD_KEY_CHARS).collect::<String>().trim_end().to_string()
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Parses "Name <addr>" / "addr" / "Name [mailto:addr]" into (addr, name).
fn parse_from_value(v: &str) -> Option<(String, String)> {
    let m = EMAIL.find(v)?;
    let addr = m.as_str().to_lowercase();
    let name = v[..m.start()].trim().trim_end_matches(['<', '[', '(']).trim().trim_matches('"').trim();
    let name = name.strip_suffix("mailto:").unwrap_or(name).trim().trim_end_matches(['<', '[']).trim().to_string();
    Some((addr, name))
}

/// The inline forwarded block of Gmail or Outlook, in English or Vietnamese.
pub fn find_forwarded(text: &str) -> Option<Forwarded> {
    let lines: Vec<&str> = text.lines().collect();
    let from_labels = ["from:", "tu:"];
    let subject_labels = ["subject:", "tieu de:", "chu de:"];
    let markers = [
        "forwarded message",
        "original message",
        "thu da chuyen tiep",
        "thu chuyen tiep",
        "tin nhan da chuyen tiep",
        "thu goc",
    ];
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_start_matches(['>', ' ']);
        // Most lines are text: their first letters say so without folding them whole.
        let head = fold_prefix(line, 8);
        let is_marker = head.starts_with("---") && {
            let folded = fold(line);
            markers.iter().any(|m| folded.contains(m))
        } || head.starts_with("________");
        let starts_block = is_marker || from_labels.iter().any(|l| head.starts_with(l));
        if !starts_block {
            continue;
        }
        // Header lines follow within a few lines: From/Từ … Subject/Tiêu đề.
        let window = &lines[i..lines.len().min(i + 9)];
        let mut from = None;
        let mut subject = String::new();
        let mut last_header = i;
        for (j, l) in window.iter().enumerate() {
            let raw = l.trim_start_matches(['>', ' ']);
            // The longest label is 8 letters.
            let f = fold_prefix(raw, 8);
            if let Some(label) = from_labels.iter().find(|lb| f.starts_with(*lb)) {
                let value = raw.get(raw.find(':').map(|p| p + 1).unwrap_or(label.len())..).unwrap_or("");
                from = parse_from_value(value);
                last_header = i + j;
            } else if subject_labels.iter().any(|lb| f.starts_with(lb)) {
                subject = raw.split_once(':').map(|(_, v)| v.trim().to_string()).unwrap_or_default();
                last_header = i + j;
            } else if ["date:", "ngay:", "sent:", "da gui:", "to:", "toi:", "den:", "cc:"]
                .iter()
                .any(|lb| f.starts_with(lb))
            {
                last_header = i + j;
            }
        }
        if let Some((from_addr, from_name)) = from {
            let text = lines[(last_header + 1).min(lines.len())..]
                .iter()
                .map(|l| l.trim_start_matches('>').trim_start())
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string();
            return Some(Forwarded { from_addr, from_name, subject, text });
        }
    }
    None
}

/// The part of a reply its author wrote: stops at the quoted original.
pub fn own_text(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        // The start tells a quote header; only "On … wrote:", "Vào … viết:" and "---…"
        // need the whole line.
        let head = fold_prefix(line, 21);
        let f = if ["on ", "vao ", "---"].iter().any(|p| head.starts_with(p)) { fold(line) } else { head };
        let quote_header = (f.starts_with("on ") && f.ends_with("wrote:"))
            || (f.starts_with("vao ") && (f.ends_with("da viet:") || f.ends_with("viet:")))
            || f.starts_with("-----original message")
            || (f.starts_with("---") && f.contains("forwarded message"))
            || (f.starts_with("---") && f.contains("chuyen tiep"))
            || f.starts_with("________")
            || ((f.starts_with("from:") || f.starts_with("tu:")) && line.contains('@'));
        if quote_header {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

/// What a mail is, for the desk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ConnectionRequest,
    MerchantConfirmation,
    LeaderConfirmation,
    OtherReply,
    Unknown,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::ConnectionRequest,
        Kind::MerchantConfirmation,
        Kind::LeaderConfirmation,
        Kind::OtherReply,
        Kind::Unknown,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Kind::ConnectionRequest => "connection_request",
            Kind::MerchantConfirmation => "merchant_confirmation",
            Kind::LeaderConfirmation => "leader_confirmation",
            Kind::OtherReply => "other_reply",
            Kind::Unknown => "unknown",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::ConnectionRequest => "Yêu cầu mở cổng",
            Kind::MerchantConfirmation => "Xác nhận của merchant",
            Kind::LeaderConfirmation => "Xác nhận của leader đối tác",
            Kind::OtherReply => "Trả lời khác",
            Kind::Unknown => "Chưa phân loại",
        }
    }

    pub fn from_code(code: &str) -> Kind {
        Kind::ALL.into_iter().find(|k| k.code() == code).unwrap_or(Kind::Unknown)
    }
}

/// Who sent a mail, relative to the partner of its conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// One of the partner's leaders allowed to confirm (MoMo).
    PartnerLeader,
    /// The partner's staff.
    Partner,
    /// Our own staff.
    Ours,
    /// Anybody else: on a partner's thread, the merchant.
    External,
}

/// A keyword rule, as stored (pattern already folded).
#[derive(Clone, Debug)]
pub struct Rule {
    pub kind: String,
    pub pattern: String,
}

fn matches(rules: &[Rule], kind: &str, folded: &str) -> Option<String> {
    rules.iter().filter(|r| r.kind == kind).find(|r| folded.contains(&r.pattern)).map(|r| r.pattern.clone())
}

/// Everything the kind decision looks at.
pub struct KindInput<'a> {
    pub in_thread: bool,
    pub sender: Sender,
    pub own_text: &'a str,
    pub subject: &'a str,
    pub forwarded: Option<(&'a Forwarded, Sender)>,
    pub rules: &'a [Rule],
}

/// The thread first, then the sender's role, then the keyword rules. Returns the kind
/// and a short Vietnamese reason shown to the user.
pub fn decide_kind(input: &KindInput<'_>) -> (Kind, String) {
    let own = fold(input.own_text);
    let subject = fold(input.subject);
    let confirms = matches(input.rules, "confirmation", &own);
    let requests = matches(input.rules, "request", &format!("{subject} {own}"));
    if input.sender == Sender::PartnerLeader
        && let Some(p) = &confirms
    {
        return (Kind::LeaderConfirmation, format!("người gửi là leader của đối tác; từ khóa “{p}”"));
    }
    if let Some((fwd, fwd_sender)) = input.forwarded
        && matches!(fwd_sender, Sender::External | Sender::PartnerLeader)
        && let Some(p) = matches(input.rules, "confirmation", &fold(&own_text(&fwd.text)))
    {
        let kind =
            if fwd_sender == Sender::PartnerLeader { Kind::LeaderConfirmation } else { Kind::MerchantConfirmation };
        return (kind, format!("thư chuyển tiếp từ {}; từ khóa “{p}”", fwd.from_addr));
    }
    if input.sender == Sender::External
        && input.in_thread
        && let Some(p) = &confirms
    {
        return (Kind::MerchantConfirmation, format!("merchant trả lời trong luồng; từ khóa “{p}”"));
    }
    if !input.in_thread
        && input.sender != Sender::Ours
        && let Some(p) = &requests
    {
        return (Kind::ConnectionRequest, format!("thư mới; từ khóa “{p}”"));
    }
    if input.in_thread {
        return (Kind::OtherReply, "trả lời trong luồng, không có từ khóa xác nhận".into());
    }
    (Kind::Unknown, "không khớp quy tắc nào".into())
}

/// What the body suggests for opening a request; the user confirms each value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suggestions {
    pub merchant: Option<String>,
    pub point: Option<String>,
    pub address: Option<String>,
    pub contact: Option<String>,
    pub phones: Vec<String>,
}

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+84|\b84|\b0)(?:[\s.\-]?\d){8,10}\b").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Vietnamese phone numbers as 0xxxxxxxxx (10 digits), de-duplicated, in order.
pub fn phones(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in PHONE.find_iter(text) {
        let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
        let local = if let Some(rest) = digits.strip_prefix("84") { format!("0{rest}") } else { digits };
        if local.len() == 10 && local.starts_with('0') && !out.contains(&local) {
            out.push(local);
        }
    }
    out
}

/// Reads "Label: value" lines of the body.
pub fn suggestions(text: &str) -> Suggestions {
    let mut s = Suggestions { phones: phones(text), ..Default::default() };
    let labels: [(&[&str], u8); 4] = [
        (
            &[
                "ten merchant",
                "merchant",
                "ten quan",
                "ten cua hang",
                "thuong hieu",
                "ten thuong hieu",
                "doi tac ban hang",
                "ten nha hang",
            ],
            0,
        ),
        (&["ten diem", "diem ban", "diem ban hang", "chi nhanh", "ten chi nhanh", "cua hang"], 1),
        (&["dia chi", "dia chi diem", "address"], 2),
        (&["nguoi lien he", "lien he", "dau moi", "contact", "nguoi dai dien"], 3),
    ];
    for line in text.lines() {
        let line = line.trim().trim_start_matches(['-', '*', '•', '+', '>']).trim();
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        let label = fold(label);
        let value = value.trim();
        if value.is_empty() || label.len() > 40 {
            continue;
        }
        for (names, slot) in &labels {
            if names.iter().any(|n| label == *n || label.trim_end_matches('s') == *n) {
                let target = match slot {
                    0 => &mut s.merchant,
                    1 => &mut s.point,
                    2 => &mut s.address,
                    _ => &mut s.contact,
                };
                if target.is_none() {
                    // A contact line often carries the phone too: keep the name only.
                    let v = if *slot == 3 {
                        PHONE.replace_all(value, "").trim().trim_end_matches([',', '-', '–', '(']).trim().to_string()
                    } else {
                        value.to_string()
                    };
                    *target = Some(v);
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]
        #[test]
        fn fold_char_by_char_is_fold_by_definition(
            s in "[ \t\nA-Za-zĐđÀ-ỹ\u{0300}-\u{036F}ΣσςΑ-ωİẞ\u{00A0}\u{2003}0-9/.,-]{0,40}"
        ) {
            proptest::prop_assert_eq!(fold(&s), fold_whole(&s));
        }

        #[test]
        fn a_folded_prefix_is_the_start_of_the_folded_whole(
            s in "[ \t\nA-Za-zĐđÀ-ỹ\u{0300}-\u{036F}ΣσςΑ-ωİẞ\u{00A0}\u{2003}0-9/.,:-]{0,40}",
            limit in 0usize..45,
        ) {
            let whole: String = fold(&s).chars().take(limit).collect();
            proptest::prop_assert_eq!(fold_prefix(&s, limit), whole);
        }
    }

    #[test]
    fn folding_removes_diacritics() {
        assert_eq!(fold("Xác Nhận  MỞ CỔNG Đồng ý"), "xac nhan mo cong dong y");
    }

    #[test]
    fn ascii_folds_as_the_full_path_would() {
        for s in ["  CK  Den\tTu NGUYEN VAN AN\r\n", "FT26305001", "", " \t ", "MBVCB.123/QR-PAY\u{b}x"] {
            let full = s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(fold(s), full, "{s:?}");
        }
        assert_eq!(fold("CK đến  Tú"), "ck den tu", "one letter outside ASCII takes the full path");
    }

    #[test]
    fn subjects_lose_their_prefixes() {
        for s in [
            "RE: Mở cổng HUB",
            "Fwd: TL: Mở cổng HUB",
            "[EXT] Re: mo cong hub",
            "Trả lời: Chuyển tiếp: Mở cổng HUB",
            "TR: FW:  Mở Cổng HUB",
        ] {
            assert_eq!(normalise_subject(s), "mo cong hub", "{s}");
        }
    }

    #[test]
    fn thread_keys_are_bounded() {
        let key = normalise_subject(&format!("RE: Fwd: {}", "確認".repeat(1000)));
        assert_eq!(key.chars().count(), MAX_THREAD_KEY_CHARS);
        assert!(key.starts_with("確認"));
    }

    #[test]
    fn phones_are_normalised() {
        assert_eq!(phones("Gọi 0903 123 456 hoặc +84 912.345.678, 0903123456"), vec!["0903123456", "0912345678"]);
    }

    #[test]
    fn phones_have_exactly_ten_digits() {
        // An old nine-digit landline and an eleven-digit run are not mobile numbers.
        assert_eq!(phones("Bàn 043 826 123, mã 0903 123 4567, gọi 0912 345 678"), vec!["0912345678"]);
    }

    #[test]
    fn own_text_stops_at_the_quoted_original() {
        // Outlook quotes under a bare "From:" block or a rule; the quoted "xác nhận" is
        // the partner's words, not the merchant's.
        let outlook =
            "Dạ em đồng ý.\n\nFrom: Hub MoMo <hub@momo.vn>\nSent: Monday\nSubject: Mở cổng\n\nNhờ merchant xác nhận.";
        assert_eq!(own_text(outlook).trim(), "Dạ em đồng ý.");
        let ruled = "Dạ em đồng ý.\n________________________________\nNhờ merchant xác nhận.";
        assert_eq!(own_text(ruled).trim(), "Dạ em đồng ý.");
    }

    #[test]
    fn own_text_keeps_the_authors_words() {
        // The author's own words may say "chuyển tiếp", or draw a "---" rule.
        let own = "Nhờ anh chuyển tiếp cho kỹ thuật.\n---\nChị Lan - Phở Thìn";
        assert_eq!(own_text(own), own);
    }

    #[test]
    fn labelled_lines_become_suggestions() {
        let s = suggestions("Tên quán: Phở Thìn\nĐịa chỉ: 13 Lò Đúc, Hà Nội\nNgười liên hệ: Chị Lan - 0988 777 666");
        assert_eq!(s.merchant.as_deref(), Some("Phở Thìn"));
        assert_eq!(s.address.as_deref(), Some("13 Lò Đúc, Hà Nội"));
        assert_eq!(s.contact.as_deref(), Some("Chị Lan"));
        assert_eq!(s.phones, vec!["0988777666"]);
        // English labels, singular or plural.
        let s = suggestions("Merchants: Phở Thìn\nAddress: 13 Lò Đúc, Hà Nội\nContact: Chị Lan");
        assert_eq!(s.merchant.as_deref(), Some("Phở Thìn"));
        assert_eq!(s.address.as_deref(), Some("13 Lò Đúc, Hà Nội"));
        assert_eq!(s.contact.as_deref(), Some("Chị Lan"));
    }

    #[test]
    fn gmail_and_outlook_forwards_are_found() {
        let gmail = "Gửi iPOS\n\n---------- Forwarded message ---------\nFrom: Nguyễn Lan <lan@phothin.vn>\nDate: Mon, 23 Nov 2026\nSubject: Xác nhận\nTo: <hub@momo.vn>\n\nBên em đồng ý mở cổng.";
        let f = find_forwarded(gmail).unwrap_or_default();
        assert_eq!(f.from_addr, "lan@phothin.vn");
        assert_eq!(f.from_name, "Nguyễn Lan");
        assert_eq!(f.text, "Bên em đồng ý mở cổng.", "the forwarded text starts after its headers");
        let outlook = "FYI\n________________________________\nTừ: Trần Minh <minh@bunbo.vn>\nĐã gửi: Thứ Hai\nĐến: hub@momo.vn\nChủ đề: Đồng ý\n\nĐồng ý kết nối.";
        assert_eq!(find_forwarded(outlook).unwrap_or_default().from_addr, "minh@bunbo.vn");
        // A phone's short forward: the marker, the sender, then the text at once.
        let short = "Chuyển anh\n-------- Thư chuyển tiếp --------\nTừ: Lan <lan@phothin.vn>\n\nĐồng ý mở cổng.";
        let f = find_forwarded(short).unwrap_or_default();
        assert_eq!((f.from_addr.as_str(), f.text.as_str()), ("lan@phothin.vn", "Đồng ý mở cổng."));
    }
}
