//! Reading a bank statement ("sao kê") as the banks export it: the header row found by
//! its Vietnamese or English column names (diacritics and case folded), title rows
//! before it (the account number, the opening balance), summary rows after the data
//! (totals, the closing balance), money as numbers or text in either convention, dates
//! as `dd/mm/yyyy` with or without a time or as spreadsheet serials. The spreadsheet and
//! CSV reading itself is [`crate::sheets`].

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sheets::{self, Flow};

/// Rows before the header that are searched for it (title and account rows).
const HEADER_SEARCH_ROWS: u32 = 60;
/// Rows whose faults are listed one by one (the count covers the rest).
const MAX_LISTED: usize = 50;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Date,
    Debit,
    Credit,
    Amount,
    Kind,
    Balance,
    Description,
    Reference,
    CounterAccount,
    CounterName,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Date,
        Field::Debit,
        Field::Credit,
        Field::Amount,
        Field::Kind,
        Field::Balance,
        Field::Description,
        Field::Reference,
        Field::CounterAccount,
        Field::CounterName,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Field::Date => "date",
            Field::Debit => "debit",
            Field::Credit => "credit",
            Field::Amount => "amount",
            Field::Kind => "kind",
            Field::Balance => "balance",
            Field::Description => "description",
            Field::Reference => "reference",
            Field::CounterAccount => "counter_account",
            Field::CounterName => "counter_name",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Field::Date => "Ngày giao dịch",
            Field::Debit => "Ghi nợ (tiền ra)",
            Field::Credit => "Ghi có (tiền vào)",
            Field::Amount => "Số tiền (có dấu, hoặc kèm cột loại)",
            Field::Kind => "Loại (Nợ/Có)",
            Field::Balance => "Số dư",
            Field::Description => "Nội dung",
            Field::Reference => "Số tham chiếu",
            Field::CounterAccount => "Tài khoản đối ứng",
            Field::CounterName => "Tên đối ứng",
        }
    }

    /// Folded header texts that name this field, checked in [`ALL_BY_PRIORITY`]
    /// order so that "số tiền ghi nợ" is a debit before it is an amount.
    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Kind => {
                &["no/co", "dr/cr", "debit/credit", "loai giao dich", "loai gd", "loai", "type", "c/d", "d/c"]
            }
            Field::Date => {
                &["ngay giao dich", "ngay gd", "ngay hach toan", "ngay thuc hien", "ngay", "transaction date", "date"]
            }
            Field::Debit => &[
                "ghi no",
                "phat sinh no",
                "ps no",
                "so tien rut",
                "rut ra",
                "tien ra",
                "chi ra",
                "debit",
                "withdrawal",
            ],
            Field::Credit => &[
                "ghi co",
                "phat sinh co",
                "ps co",
                "so tien gui",
                "gui vao",
                "tien vao",
                "thu vao",
                "credit",
                "deposit",
            ],
            Field::Balance => &["so du", "balance"],
            Field::CounterName => &[
                "ten doi ung",
                "ten tai khoan doi ung",
                "ten tk doi ung",
                "ten nguoi chuyen",
                "ben doi ung",
                "counterparty name",
                "beneficiary name",
                "remitter",
            ],
            Field::CounterAccount => &[
                "tai khoan doi ung",
                "tk doi ung",
                "so tai khoan doi ung",
                "counter account",
                "corresponsive account",
                "beneficiary account",
            ],
            Field::Reference => &[
                "so tham chieu",
                "ma giao dich",
                "so but toan",
                "ma gd",
                "so gd",
                "so giao dich",
                "so chung tu",
                "so ct",
                "reference",
                "ref no",
                "ref",
                "transaction no",
                "transaction id",
                "txn id",
                "trace",
            ],
            Field::Description => {
                &["noi dung", "dien giai", "mo ta", "chi tiet", "description", "details", "remark", "narrative"]
            }
            Field::Amount => &["so tien", "phat sinh", "amount"],
        }
    }
}

/// The order header names are tried in: specific names before the general ones.
const ALL_BY_PRIORITY: [Field; 10] = [
    Field::Kind,
    Field::Debit,
    Field::Credit,
    Field::Balance,
    Field::CounterName,
    Field::CounterAccount,
    Field::Reference,
    Field::Date,
    Field::Description,
    Field::Amount,
];

/// Lower case, no diacritics, punctuation other than `/` as spaces.
pub fn fold(s: &str) -> String {
    let f = crate::mail::inbound::classify::fold(s);
    let spaced: String = f.chars().map(|c| if c.is_alphanumeric() || c == '/' { c } else { ' ' }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `name` occurs in `text` as whole words.
fn has_words(text: &str, name: &str) -> bool {
    if name.contains('/') {
        return text.contains(name);
    }
    // "Nợ/Debit": each side of a slash is a name of its own.
    format!(" {} ", text.replace('/', " ")).contains(&format!(" {name} "))
}

/// The field a header cell names, if any.
fn field_of(header: &str) -> Option<Field> {
    let h = fold(header);
    if h.is_empty() || h.contains("loai tien") || h.contains("currency") {
        return None;
    }
    ALL_BY_PRIORITY.into_iter().find(|f| f.names().iter().any(|n| has_words(&h, n)))
}

/// Which columns hold what (saved per bank and layout, adjustable on the preview page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub columns: HashMap<Field, usize>,
}

impl Mapping {
    pub fn get(&self, f: Field) -> Option<usize> {
        self.columns.get(&f).copied()
    }

    /// A mapping the import can run with; the reason when not.
    pub fn check(&self) -> Result<(), String> {
        if self.get(Field::Date).is_none() {
            return Err("Chọn cột ngày giao dịch.".into());
        }
        let two = self.get(Field::Debit).is_some() || self.get(Field::Credit).is_some();
        if !two && self.get(Field::Amount).is_none() {
            return Err("Chọn cột ghi nợ và ghi có, hoặc cột số tiền.".into());
        }
        Ok(())
    }
}

/// Where the statement's table is and what its header says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub sheet: usize,
    pub sheet_name: String,
    pub header_row: u32,
    pub headers: Vec<String>,
}

impl Layout {
    /// The header's folded names: the same layout from the same bank has the same one.
    pub fn signature(&self) -> String {
        let joined: Vec<String> = self.headers.iter().map(|h| fold(h)).collect();
        let digest = Sha256::digest(joined.join("|").as_bytes());
        digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }
}

/// The header detected in `row`: the mapping when it names a date and money columns.
fn detect(row: &[String]) -> Option<Mapping> {
    let mut m = Mapping::default();
    for (c, cell) in row.iter().enumerate() {
        if let Some(f) = field_of(cell) {
            m.columns.entry(f).or_insert(c);
        }
    }
    // A lone "Loại" beside debit and credit columns is something else (the channel).
    if m.get(Field::Debit).is_some() && m.get(Field::Credit).is_some() {
        m.columns.remove(&Field::Kind);
        m.columns.remove(&Field::Amount);
    }
    (m.check().is_ok() && m.columns.len() >= 3).then_some(m)
}

/// A mapping's columns by [`Field`] (in [`Field::ALL`] order).
#[derive(Default)]
struct Columns([Option<usize>; 10]);

impl Columns {
    fn of(m: &Mapping) -> Self {
        Columns(Field::ALL.map(|f| m.get(f)))
    }

    fn get(&self, f: Field) -> Option<usize> {
        self.0[f as usize]
    }
}

/// A cell that holds text where money was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotMoney;

/// Money in đồng from a cell: `1000000`, `1,000,000`, `1.000.000,00`, `-500.000 đ`,
/// `(200,000)`, `+1 000 000 VND`. None for an empty cell, Err for text that is not money.
pub fn parse_money(s: &str) -> Result<Option<i64>, NotMoney> {
    let t = s.trim();
    if t.is_empty() || t == "-" {
        return Ok(None);
    }
    // Numeric cells arrive as plain digits: read them without the conventions below.
    let (sign, digits) = t.strip_prefix('-').map_or((1, t), |d| (-1, d));
    if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse::<i64>().map(|v| Some(sign * v)).map_err(|_| NotMoney);
    }
    let lower = t.to_lowercase();
    let mut body: String =
        lower.replace("vnd", "").replace("vnđ", "").replace('đ', "").chars().filter(|c| !c.is_whitespace()).collect();
    let mut negative = false;
    if body.starts_with('(') && body.ends_with(')') {
        negative = true;
        body = body[1..body.len() - 1].to_string();
    }
    if let Some(rest) = body.strip_prefix('-') {
        negative = !negative;
        body = rest.to_string();
    } else if let Some(rest) = body.strip_prefix('+') {
        body = rest.to_string();
    }
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') {
        return Err(NotMoney);
    }
    let (dots, commas) = (body.matches('.').count(), body.matches(',').count());
    // The decimal separator: the later of the two when both occur; a single one not
    // followed by exactly three digits; otherwise there is none.
    let decimal = match (dots, commas) {
        (0, 0) => None,
        (_, 0) | (0, _) => {
            let sep = if dots > 0 { '.' } else { ',' };
            let after = body.len() - body.rfind(sep).unwrap_or(0) - 1;
            (dots + commas == 1 && after != 3).then_some(sep)
        }
        _ => body.rfind(['.', ',']).and_then(|i| body[i..].chars().next()),
    };
    let (int_part, frac_part) = match decimal {
        Some(sep) => {
            let i = body.rfind(sep).unwrap_or(body.len());
            (&body[..i], &body[i + 1..])
        }
        None => (body.as_str(), ""),
    };
    // The decimal separator occurs once; the other one only groups digits.
    if decimal.is_some_and(|d| int_part.contains(d)) {
        return Err(NotMoney);
    }
    let digits: String = int_part.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() && frac_part.is_empty() || frac_part.contains(['.', ',']) || digits.len() > 15 {
        return Err(NotMoney);
    }
    let mut v: i64 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| NotMoney)? };
    // Đồng have no smaller unit: a fraction rounds half up.
    if frac_part.chars().next().is_some_and(|c| c >= '5') {
        v += 1;
    }
    Ok(Some(if negative { -v } else { v }))
}

/// A date (and time) in the bank's local time: `dd/mm/yyyy[ HH:MM[:SS]]` (also with
/// `-` or `.`), `yyyy-mm-dd[ HH:MM:SS]` (how date cells are read), a spreadsheet serial.
pub fn parse_date(s: &str) -> Option<NaiveDateTime> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    exact_date(t.as_bytes()).or_else(|| any_date(t))
}

/// [`parse_date`] for every shape it accepts, format after format.
fn any_date(t: &str) -> Option<NaiveDateTime> {
    if let Ok(serial) = t.parse::<f64>() {
        // 1954-10-03 … 2119-01-08: anything else is not a date.
        if !(20_000.0..80_000.0).contains(&serial) {
            return None;
        }
        let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_time(NaiveTime::MIN);
        let secs = (serial * 86_400.0).round() as i64;
        return Some(base + chrono::Duration::seconds(secs));
    }
    let normal: String = t.replace(['-', '.'], "/").replace('T', " ");
    let normal = normal.split_whitespace().collect::<Vec<_>>().join(" ");
    for f in ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%H:%M:%S %d/%m/%Y"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&normal, f) {
            return Some(d);
        }
    }
    for f in ["%d/%m/%Y", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(&normal, f) {
            return Some(d.and_time(NaiveTime::MIN));
        }
    }
    None
}

/// The shapes nearly every row has, read without trying format after format:
/// `dd/mm/yyyy` or `yyyy-mm-dd` (any of `/-.`), then optionally ` HH:MM[:SS]`. Anything
/// else (or an impossible date) is left to the general reading.
fn exact_date(b: &[u8]) -> Option<NaiveDateTime> {
    let num = |r: &[u8]| -> Option<u32> {
        r.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let sep = |c: u8| matches!(c, b'/' | b'-' | b'.');
    if b.len() < 10 {
        return None;
    }
    let (date, rest) = b.split_at(10);
    let (y, m, d) = if sep(date[2]) && sep(date[5]) {
        (num(&date[6..10])?, num(&date[3..5])?, num(&date[0..2])?)
    } else if sep(date[4]) && sep(date[7]) {
        (num(&date[0..4])?, num(&date[5..7])?, num(&date[8..10])?)
    } else {
        return None;
    };
    let (h, mi, sec) = match rest {
        [] => (0, 0, 0),
        [b' ' | b'T', h1, h2, b':', m1, m2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?, 0),
        [b' ' | b'T', h1, h2, b':', m1, m2, b':', s1, s2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?, num(&[*s1, *s2])?),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?.and_hms_opt(h, mi, sec)
}

/// One transaction of the statement, as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StRow {
    /// The row in the file (1-based, as the spreadsheet shows it).
    pub line: u32,
    /// Local time (Asia/Ho_Chi_Minh), as the statement writes it.
    pub at: NaiveDateTime,
    pub amount: i64,
    pub balance: Option<i64>,
    pub description: String,
    pub reference: String,
    pub counter_account: String,
    pub counter_name: String,
    /// The bank's reference, or the id made from the row's content and position.
    pub bank_tx_id: String,
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub line: u32,
    pub reason: String,
}

/// A statement read with a mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Statement {
    pub layout: Layout,
    pub mapping: Mapping,
    pub account_number: Option<String>,
    pub opening: Option<i64>,
    pub closing: Option<i64>,
    /// The transactions (only the first ones when read for a preview).
    pub rows: Vec<StRow>,
    /// Every transaction found, kept or not.
    pub count: usize,
    pub sum: i64,
    pub skipped: Vec<Skipped>,
    /// Rows whose date or amount does not parse (the first [`MAX_LISTED`]).
    pub faults: Vec<Skipped>,
    pub fault_count: usize,
}

impl Statement {
    /// opening + movements = closing, when the statement states both.
    pub fn balance_check(&self) -> Option<Result<(), i64>> {
        let (o, c) = (self.opening?, self.closing?);
        let diff = c - (o + self.sum);
        Some(if diff == 0 { Ok(()) } else { Err(diff) })
    }

    /// The faulty rows as a sentence for people (None when there are none).
    pub fn fault_message(&self) -> Option<String> {
        if self.fault_count == 0 {
            return None;
        }
        let listed: Vec<String> = self.faults.iter().map(|f| format!("dòng {}: {}", f.line, f.reason)).collect();
        let more = self.fault_count - self.faults.len();
        Some(format!(
            "Có {} dòng không đọc được ngày hoặc số tiền, chưa nhập gì: {}{}.",
            self.fault_count,
            listed.join("; "),
            if more > 0 { format!("; và {more} dòng khác") } else { String::new() }
        ))
    }
}

/// The first run of at least 6 digits (spaces and dashes inside allowed) in `s`.
fn account_digits(s: &str) -> Option<String> {
    let mut best = String::new();
    let mut run = String::new();
    for c in s.chars().chain(std::iter::once('x')) {
        if c.is_ascii_digit() {
            run.push(c);
        } else if (c == ' ' || c == '-' || c == '.') && !run.is_empty() {
            continue;
        } else {
            if run.len() >= 6 && best.is_empty() {
                best = run.clone();
            }
            run.clear();
        }
    }
    (!best.is_empty()).then_some(best)
}

fn is_account_label(folded: &str) -> bool {
    ["so tai khoan", "tai khoan", "so tk", "account number", "account no", "account"]
        .iter()
        .any(|n| has_words(folded, n))
        && !folded.contains("doi ung")
}

fn is_opening(folded: &str) -> bool {
    ["so du dau", "opening balance", "beginning balance", "so du dau ky"].iter().any(|n| folded.contains(n))
}

fn is_closing(folded: &str) -> bool {
    ["so du cuoi", "closing balance", "ending balance"].iter().any(|n| folded.contains(n))
}

fn is_summary(folded: &str) -> bool {
    // Checked on every row: the names as whole words, without building strings.
    ["tong cong", "tong so", "tong phat sinh", "cong phat sinh", "total", "tong"].iter().any(|n| {
        folded.starts_with(n)
            || folded
                .match_indices(n)
                .any(|(i, _)| folded[..i].ends_with(' ') && folded[i + n.len()..].starts_with(' '))
    })
}

/// The first money value in the cells after the label cell (or in the label after `:`).
fn money_after_label(row: &[String], label_col: usize) -> Option<i64> {
    let in_label = row[label_col].rsplit(':').next().filter(|_| row[label_col].contains(':'));
    in_label
        .into_iter()
        .chain(row.iter().skip(label_col + 1).map(String::as_str))
        .filter(|c| !c.trim().is_empty())
        .find_map(|c| parse_money(c).ok().flatten())
}

/// Reads the statement. `mapping`: the saved or adjusted one (else the detected one);
/// `keep`: how many transactions to keep (all for an import, a few for a preview).
pub fn read(bytes: &[u8], file_name: &str, mapping: Option<&Mapping>, keep: usize) -> Result<Statement, String> {
    let mut st = Statement::default();
    let mut found = false;
    let mut done = false;
    let mut title_rows = 0u32;
    let mut last_sheet = usize::MAX;
    let mut prev: Option<(NaiveDateTime, u32)> = None;
    let mut ordinals: HashMap<[u8; 16], u32> = HashMap::new();
    let mut refs: HashMap<String, u32> = HashMap::new();
    // The mapping in use, apart from `st` (which the rows change), as an array: every
    // row looks its columns up several times.
    let mut cols = Columns::default();
    sheets::stream(bytes, file_name, |si, name, r, row| {
        if found && si != st.layout.sheet {
            // The table was on an earlier sheet: later ones repeat it (another language).
            return Ok(Flow::Stop);
        }
        if si != last_sheet {
            last_sheet = si;
            title_rows = 0;
        }
        let line = r + 1;
        if !found {
            title_rows += 1;
            if title_rows > HEADER_SEARCH_ROWS {
                return Ok(Flow::SkipSheet);
            }
            let detected = detect(row);
            if let Some(d) = detected {
                found = true;
                st.layout = Layout { sheet: si, sheet_name: name.to_string(), header_row: r, headers: row.to_vec() };
                st.mapping = mapping.cloned().unwrap_or(d);
                cols = Columns::of(&st.mapping);
                return Ok(Flow::Next);
            }
            title_facts(&mut st, row);
            return Ok(Flow::Next);
        }
        if done {
            title_facts(&mut st, row);
            return Ok(Flow::Next);
        }
        let m = &cols;
        let cell = |f: Field| m.get(f).and_then(|c| row.get(c)).map(|s| s.trim()).unwrap_or("");
        let first = row.iter().find(|c| !c.trim().is_empty()).map(String::as_str).unwrap_or("");
        // A first cell without letters (the row's number) names no total nor balance.
        let first_text =
            if first.bytes().any(|b| b.is_ascii_alphabetic() || !b.is_ascii()) { fold(first) } else { String::new() };
        let date_text = cell(Field::Date);
        let date = parse_date(date_text);
        if is_opening(&first_text) || is_closing(&first_text) || (date.is_none() && is_summary(&first_text)) {
            if is_summary(&first_text) && !is_opening(&first_text) && !is_closing(&first_text) {
                st.skipped.push(Skipped { line, reason: "dòng tổng cộng".into() });
                // Totals end the table; balances stated after them are still read.
                done = true;
            }
            title_facts(&mut st, row);
            return Ok(Flow::Next);
        }
        let money = |f: Field| parse_money(cell(f));
        let (debit, credit, amount) = (money(Field::Debit), money(Field::Credit), money(Field::Amount));
        let has_money = [cell(Field::Debit), cell(Field::Credit), cell(Field::Amount)].iter().any(|c| !c.is_empty());
        if date.is_none() && !date_text.is_empty() && !has_money {
            // A second header line (the English names under the Vietnamese ones).
            st.skipped
                .push(Skipped { line, reason: "không phải giao dịch (không có ngày và số tiền)".into() });
            return Ok(Flow::Next);
        }
        if !has_money {
            if date_text.is_empty()
                && !cell(Field::Description).is_empty()
                && let Some(last) = st.rows.last_mut().filter(|l| prev.is_some_and(|p| p.1 == l.line))
            {
                // The previous transaction's description goes on in this row.
                last.description = format!("{} {}", last.description, cell(Field::Description));
                return Ok(Flow::Next);
            }
            st.skipped.push(Skipped { line, reason: "không có số tiền".into() });
            return Ok(Flow::Next);
        }
        let fault = |why: String| Skipped { line, reason: why };
        let at = match (date, date_text.is_empty(), prev) {
            (Some(d), _, _) => d,
            // A blank date: the same day as the row before.
            (None, true, Some((p, _))) => p,
            (None, true, None) => {
                push_fault(&mut st, fault("thiếu ngày giao dịch".into()));
                return Ok(Flow::Next);
            }
            (None, false, _) => {
                push_fault(&mut st, fault(format!("ngày “{date_text}” không đúng dạng dd/mm/yyyy")));
                return Ok(Flow::Next);
            }
        };
        let bad = |f: Field| format!("số tiền “{}” không đọc được", cell(f));
        let value = if m.get(Field::Debit).is_some() || m.get(Field::Credit).is_some() {
            match (debit, credit) {
                (Err(NotMoney), _) => Err(bad(Field::Debit)),
                (_, Err(NotMoney)) => Err(bad(Field::Credit)),
                (Ok(d), Ok(c)) => Ok(c.unwrap_or(0).abs() - d.unwrap_or(0).abs()),
            }
        } else {
            match amount {
                Err(NotMoney) => Err(bad(Field::Amount)),
                Ok(a) => {
                    let a = a.unwrap_or(0);
                    match m.get(Field::Kind).map(|_| fold(cell(Field::Kind))) {
                        None => Ok(a),
                        Some(k) if is_credit(&k) => Ok(a.abs()),
                        Some(k) if is_debit(&k) => Ok(-a.abs()),
                        Some(_) => Err(format!("loại “{}” không phải Nợ hay Có", cell(Field::Kind))),
                    }
                }
            }
        };
        let amount = match value {
            Ok(v) => v,
            Err(why) => {
                push_fault(&mut st, fault(why));
                return Ok(Flow::Next);
            }
        };
        let balance = match parse_money(cell(Field::Balance)) {
            Ok(b) => b,
            Err(NotMoney) => {
                push_fault(&mut st, fault(format!("số dư “{}” không đọc được", cell(Field::Balance))));
                return Ok(Flow::Next);
            }
        };
        prev = Some((at, line));
        if amount == 0 {
            st.skipped.push(Skipped { line, reason: "số tiền bằng 0".into() });
            return Ok(Flow::Next);
        }
        st.count += 1;
        st.sum += amount;
        if st.fault_count > 0 || st.rows.len() >= keep {
            return Ok(Flow::Next);
        }
        let description: String = cell(Field::Description).chars().take(1000).collect();
        let reference = cell(Field::Reference).to_string();
        let bank_tx_id = if reference.is_empty() {
            // Content and position: identical rows of one day are told apart by their
            // order, so an overlapping statement gives the same ids again.
            let content = format!(
                "{}|{}|{}|{}",
                at,
                amount,
                balance.map(|b| b.to_string()).unwrap_or_default(),
                fold(&description)
            );
            let digest: [u8; 16] = Sha256::digest(content.as_bytes())[..16].try_into().unwrap_or_default();
            let n = ordinals.entry(digest).or_insert(0);
            *n += 1;
            format!("sk-{}-{n}", hex::encode(&digest[..12]))
        } else {
            // A reference repeated in one statement (a transfer and its fee) stays two.
            match refs.get_mut(&reference) {
                Some(n) => {
                    *n += 1;
                    format!("{reference}#{n}")
                }
                None => {
                    refs.insert(reference.clone(), 1);
                    reference.clone()
                }
            }
        };
        st.rows.push(StRow {
            line,
            at,
            amount,
            balance,
            description,
            reference,
            counter_account: cell(Field::CounterAccount).chars().take(64).collect(),
            counter_name: cell(Field::CounterName).chars().take(200).collect(),
            bank_tx_id,
        });
        Ok(Flow::Next)
    })?;
    if !found {
        return Err("Không tìm thấy dòng tiêu đề của bảng giao dịch (cần các cột như “Ngày giao dịch”, “Ghi nợ”, “Ghi có” hoặc “Số tiền”). Tệp có phải sao kê ngân hàng không?".into());
    }
    Ok(st)
}

fn push_fault(st: &mut Statement, f: Skipped) {
    st.fault_count += 1;
    if st.faults.len() < MAX_LISTED {
        st.faults.push(f);
    }
}

fn is_credit(k: &str) -> bool {
    ["c", "cr", "co", "ghi co", "credit", "+", "thu", "in"].contains(&k)
        || k.starts_with("credit")
        || k.ends_with(" co")
}

fn is_debit(k: &str) -> bool {
    ["d", "dr", "n", "no", "ghi no", "debit", "-", "chi", "out"].contains(&k)
        || k.starts_with("debit")
        || k.ends_with(" no")
}

/// The account number and balances stated in a title or summary row.
fn title_facts(st: &mut Statement, row: &[String]) {
    for (c, cell) in row.iter().enumerate() {
        let f = fold(cell);
        if f.is_empty() {
            continue;
        }
        if st.account_number.is_none() && is_account_label(&f) {
            let same = account_digits(cell.rsplit(':').next().unwrap_or(""));
            let next = row.iter().skip(c + 1).find(|x| !x.trim().is_empty()).and_then(|x| account_digits(x));
            st.account_number = same.or(next);
        }
        if is_opening(&f) && st.opening.is_none() {
            st.opening = money_after_label(row, c);
        } else if is_closing(&f) && st.closing.is_none() {
            st.closing = money_after_label(row, c);
        }
    }
}

/// The same account number, ignoring spaces, dashes and leading zeros.
pub fn same_account(a: &str, b: &str) -> bool {
    let d = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>().trim_start_matches('0').to_string();
    !d(a).is_empty() && d(a) == d(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_in_every_convention() {
        let m = |s: &str| parse_money(s).ok().flatten();
        assert_eq!(m("1,000,000"), Some(1_000_000));
        assert_eq!(m("1.000.000,00"), Some(1_000_000));
        assert_eq!(m("1,000,000.00"), Some(1_000_000));
        assert_eq!(m("-500.000 đ"), Some(-500_000));
        assert_eq!(m("(200,000)"), Some(-200_000));
        assert_eq!(m("+1 000 000 VND"), Some(1_000_000));
        assert_eq!(m("2500000"), Some(2_500_000));
        assert_eq!(m("12.5"), Some(13));
        assert_eq!(m(""), None);
        assert!(parse_money("abc").is_err());
        assert!(parse_money("1.2.3,4,5").is_err());
    }

    #[test]
    fn dates_as_banks_write_them() {
        let d = |s: &str| parse_date(s).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string());
        assert_eq!(d("05/11/2026").as_deref(), Some("2026-11-05 00:00:00"));
        assert_eq!(d("05/11/2026 14:03:09").as_deref(), Some("2026-11-05 14:03:09"));
        assert_eq!(d("05-11-2026 14:03").as_deref(), Some("2026-11-05 14:03:00"));
        assert_eq!(d("2026-11-05").as_deref(), Some("2026-11-05 00:00:00"));
        assert_eq!(d("46331").as_deref(), Some("2026-11-05 00:00:00"));
        assert_eq!(d("46331.5").as_deref(), Some("2026-11-05 12:00:00"));
        assert_eq!(d("31/02/2026"), None);
        assert_eq!(d("hôm qua"), None);
        assert_eq!(d("123"), None);
        assert_eq!(d("05.11.2026").as_deref(), Some("2026-11-05 00:00:00"));
        assert_eq!(d("2026-11-05T14:03").as_deref(), Some("2026-11-05 14:03:00"));
        assert_eq!(d("29/02/2025 10:00:00"), None);
    }

    #[test]
    fn the_quick_date_reading_agrees_with_the_general_one() {
        let mut seen = 0;
        for day in ["01", "05", "29", "31", "32", "1x"] {
            for month in ["02", "11", "13"] {
                for sep in ["/", "-", "."] {
                    for time in ["", " 00:00", " 14:03", " 23:59:59", "T07:08:09", " 24:00", " 12:60:00", " 1:2"] {
                        for text in
                            [format!("{day}{sep}{month}{sep}2024{time}"), format!("2024{sep}{month}{sep}{day}{time}")]
                        {
                            if let Some(quick) = exact_date(text.as_bytes()) {
                                seen += 1;
                                assert_eq!(Some(quick), any_date(&text), "{text}");
                            }
                        }
                    }
                }
            }
        }
        // Most shapes above take the quick path (the rest are invalid or unusual).
        assert!(seen >= 150, "{seen}");
    }

    #[test]
    fn columns_are_looked_up_by_their_field() {
        let mut m = Mapping::default();
        for (i, f) in Field::ALL.into_iter().enumerate() {
            m.columns.insert(f, i * 3);
        }
        let cols = Columns::of(&m);
        assert!(Field::ALL.into_iter().all(|f| cols.get(f) == m.get(f)));
    }

    #[test]
    fn headers_by_their_names() {
        let row = |cells: &[&str]| cells.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let m = detect(&row(&[
            "STT",
            "Ngày giao dịch",
            "Số tham chiếu",
            "Số tiền ghi nợ",
            "Số tiền ghi có",
            "Số dư",
            "Nội dung",
        ]))
        .unwrap_or_default();
        assert_eq!(m.get(Field::Date), Some(1));
        assert_eq!(m.get(Field::Reference), Some(2));
        assert_eq!(m.get(Field::Debit), Some(3));
        assert_eq!(m.get(Field::Credit), Some(4));
        assert_eq!(m.get(Field::Balance), Some(5));
        assert_eq!(m.get(Field::Description), Some(6));
        let m = detect(&row(&["Transaction Date", "Amount", "Dr/Cr", "Description"])).unwrap_or_default();
        assert_eq!((m.get(Field::Amount), m.get(Field::Kind)), (Some(1), Some(2)));
        assert!(detect(&row(&["SAO KÊ TÀI KHOẢN", "Số tài khoản: 0071000123456"])).is_none());
    }
}
