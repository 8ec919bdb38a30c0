//! Reconciliation (đối soát) of our month list against a partner's statement, read with
//! calamine (xlsx, xls, xlsb, ods) or as CSV. Codes are compared normalised (case,
//! spaces, leading zeros), so "pos-0012" and "POS-12 " are the same point.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::Row;
use crate::audit::{self, Actor};
use crate::db::DbConn;
use crate::db::schema::{recon_mappings, reconciliations};
use crate::error::{AppError, AppResult};
use crate::mail::inbound::classify::fold;

use crate::sheets::Flow;

/// Which columns of which sheet hold what (saved per partner and reused).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Mapping {
    pub sheet: String,
    pub header_row: usize,
    pub pos_id: Option<usize>,
    pub point_code: Option<usize>,
    pub merchant: Option<usize>,
    pub date: Option<usize>,
}

/// Upper case, no spaces, no leading zeros in digit runs at the start of the code.
pub fn normalise_code(s: &str) -> String {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    let trimmed = compact.trim_start_matches('0');
    if trimmed.is_empty() { compact } else { trimmed.to_string() }
}

/// The code as both sides are matched on: "POS-0012" and "pos-12" compare the prefix
/// and the number without its zeros. Built in a buffer kept by the caller, so the usual
/// short code costs no allocation.
fn normalise_key(s: &str, buf: &mut String) -> Text {
    normalise_into(s, buf);
    Text::new(buf.as_str())
}

/// [`normalise_key`] left in `buf`.
fn normalise_into(s: &str, buf: &mut String) {
    buf.clear();
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii() {
            buf.push(c.to_ascii_uppercase());
        } else {
            buf.extend(c.to_uppercase());
        }
    }
    // Leading zeros go, unless the code is nothing but zeros.
    let zeros = buf.len() - buf.trim_start_matches('0').len();
    if zeros < buf.len() {
        buf.drain(..zeros);
    }
    // Then the zeros at the head of the trailing number, keeping one digit.
    // (Counted from the end: the letter before them may be "Ở", several bytes long.)
    let digits = buf.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && digits < buf.len() {
        let zeros = buf[digits..].len() - buf[digits..].trim_start_matches('0').len();
        let zeros = if zeros == buf.len() - digits { zeros - 1 } else { zeros };
        buf.drain(digits..digits + zeros);
    }
}

/// Which line of theirs a row of ours matched. Their cells say what ours do (that is
/// the match) and the file is kept, so the number is all the outcome holds of them.
/// (Outcomes saved before hold their whole line; the other cells are read past.)
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct TheirLine {
    pub line: usize,
}

/// Cell text on both sides: up to 23 bytes inline, longer shared.
pub type Text = smol_str::SmolStr;

/// One line of their statement, as mapped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TheirRow {
    /// The line as Excel numbers it.
    pub line: usize,
    pub key: Text,
    pub merchant: Text,
    pub date: Text,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
// Outcomes saved before also hold each row's partner and key; neither is shown (one
// partner a statement), and they are read past.
pub struct OurRow {
    pub merchant: Text,
    pub point: Text,
    pub pos_id: Text,
    pub point_code: Text,
    pub date: Text,
    pub pyc: Text,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub matched: Vec<(OurRow, TheirLine)>,
    pub only_ours: Vec<OurRow>,
    pub only_theirs: Vec<TheirRow>,
    pub differing: Vec<(OurRow, TheirRow, String)>,
}

/// The head of each list of a saved outcome, with the list's length: what the page
/// shows, read from the saved result without holding the rest.
#[derive(Debug, Default, Deserialize)]
pub struct OutcomeHead {
    pub matched: Head<serde::de::IgnoredAny>,
    pub only_ours: Head<OurRow>,
    pub only_theirs: Head<TheirRow>,
    pub differing: Head<(OurRow, TheirRow, String)>,
}

/// Lines of each list shown on the page; the workbook has them all.
pub const SHOWN: usize = 200;

/// The first [`SHOWN`] items of a list and how long it is.
#[derive(Debug)]
pub struct Head<T> {
    pub items: Vec<T>,
    pub total: usize,
}

impl<T> Default for Head<T> {
    fn default() -> Self {
        Head { items: Vec::new(), total: 0 }
    }
}

impl<T> Head<T> {
    /// How many are not shown.
    pub fn rest(&self) -> usize {
        self.total - self.items.len()
    }

    /// [`Head::rest`] written for people.
    pub fn rest_count(&self) -> crate::fmt::Count {
        crate::fmt::Count(self.rest() as i64)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Head<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Head<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Head<T>, A::Error> {
                let mut head = Head::default();
                while head.items.len() < SHOWN {
                    match seq.next_element()? {
                        Some(item) => head.items.push(item),
                        None => {
                            head.total = head.items.len();
                            return Ok(head);
                        }
                    }
                }
                head.total = head.items.len();
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    head.total += 1;
                }
                Ok(head)
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

/// What one pass over the statement found of the sheet: its origin (its first used row
/// and column, where the mapping counts from), either known or taken as it looks so far.
struct Pass {
    /// The origin as it was when the first line was taken, and at the end.
    taken_at: Option<(u32, u32)>,
    origin: Option<(u32, u32)>,
    /// One past the last used column.
    end_col: u32,
}

fn read_pass(
    bytes: &[u8],
    file_name: &str,
    m: &Mapping,
    key_col: usize,
    known: Option<(u32, u32)>,
    each: &mut dyn FnMut(TheirRow),
) -> Result<Pass, String> {
    let mut pass = Pass { taken_at: None, origin: None, end_col: 0 };
    let mut buf = String::new();
    crate::sheets::stream(bytes, file_name, |_, sheet, r, cells| {
        if sheet != m.sheet {
            // Sheets come one after another: once ours is done, nothing else is wanted.
            return Ok(if pass.origin.is_some() { Flow::Stop } else { Flow::SkipSheet });
        }
        // The streamed row holds cells from column A up to its last used one.
        let lead = cells.iter().position(|c| !c.is_empty()).unwrap_or(0) as u32;
        pass.end_col = pass.end_col.max(cells.len() as u32);
        let seen = pass.origin.map_or((r, lead), |(r0, c0)| (r0.min(r), c0.min(lead)));
        pass.origin = Some(seen);
        let (r0, c0) = known.unwrap_or(seen);
        if r < r0 || ((r - r0) as usize) <= m.header_row {
            return Ok(Flow::Next);
        }
        let at = |col: usize| cells.get(c0 as usize + col).map(String::as_str).unwrap_or("");
        let key = at(key_col);
        if key.is_empty() {
            return Ok(Flow::Next);
        }
        pass.taken_at.get_or_insert((r0, c0));
        each(TheirRow {
            line: r as usize + 1,
            key: normalise_key(key, &mut buf),
            merchant: m.merchant.map(at).map(Text::new).unwrap_or_default(),
            date: m.date.map(at).map(Text::new).unwrap_or_default(),
        });
        Ok(Flow::Next)
    })?;
    Ok(pass)
}

/// What [`each_their_line`] hands over.
pub enum TheirLines {
    /// The next lines, in the statement's order.
    Lines(Vec<TheirRow>),
    /// Forget the lines so far: they are read again from the sheet's true origin.
    Again,
}

/// Lines handed over per [`TheirLines::Lines`].
const LINES_BATCH: usize = 4_096;

/// Their statement's lines under the mapping, handed to `each` in batches as the
/// uploaded file is read, without keeping its other sheets, columns or cells.
pub fn each_their_line(
    bytes: &[u8],
    file_name: &str,
    m: &Mapping,
    each: &mut dyn FnMut(TheirLines),
) -> Result<(), String> {
    let key_col = m.pos_id.or(m.point_code).ok_or("Chọn cột POS ID hoặc cột mã điểm.")?;
    let mut batch = Vec::with_capacity(LINES_BATCH);
    let mut pass = read_pass(bytes, file_name, m, key_col, None, &mut |t| {
        batch.push(t);
        if batch.len() == LINES_BATCH {
            each(TheirLines::Lines(std::mem::replace(&mut batch, Vec::with_capacity(LINES_BATCH))));
        }
    })?;
    let Some((_, first_col)) = pass.origin else {
        return Err(format!("Không có trang “{}” trong tệp.", m.sheet));
    };
    let width = pass.end_col.saturating_sub(first_col) as usize;
    for (col, what) in [(Some(key_col), "mã"), (m.merchant, "merchant"), (m.date, "ngày")] {
        if let Some(c) = col
            && c >= width
        {
            return Err(format!("Cột {what} đã chọn không có trong trang “{}”.", m.sheet));
        }
    }
    // A row further up or left than the lines read so far moved the origin after them
    // (rare: a title in column B over data from column A). Read again from the origin.
    if pass.taken_at.is_some() && pass.taken_at != pass.origin {
        batch.clear();
        each(TheirLines::Again);
        pass = read_pass(bytes, file_name, m, key_col, pass.origin, &mut |t| {
            batch.push(t);
            if batch.len() == LINES_BATCH {
                each(TheirLines::Lines(std::mem::replace(&mut batch, Vec::with_capacity(LINES_BATCH))));
            }
        })?;
        debug_assert!(pass.origin.is_some());
    }
    if !batch.is_empty() {
        each(TheirLines::Lines(batch));
    }
    Ok(())
}

/// Their statement's lines under the mapping, all at once (see [`each_their_line`]).
pub fn their_rows(bytes: &[u8], file_name: &str, m: &Mapping) -> Result<Vec<TheirRow>, String> {
    let mut rows = Vec::new();
    each_their_line(bytes, file_name, m, &mut |lines| match lines {
        TheirLines::Lines(v) => rows.extend(v),
        TheirLines::Again => rows.clear(),
    })?;
    Ok(rows)
}

/// Our connection as it is reconciled.
pub fn our_row(r: Row) -> OurRow {
    OurRow {
        merchant: r.merchant.into(),
        point: r.point.into(),
        pos_id: r.pos_id.into(),
        point_code: r.point_code.into(),
        date: iso_date(r.live_at.date()),
        pyc: r.pyc.into(),
    }
}

/// yyyy-mm-dd, written digit by digit: a strftime pattern is parsed on every call, and
/// this runs once per row.
fn iso_date(d: chrono::NaiveDate) -> Text {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        return smol_str::format_smolstr!("{}", d.format("%Y-%m-%d"));
    }
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let y = y as u32;
    [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        '-',
        digit(m / 10),
        digit(m),
        '-',
        digit(day / 10),
        digit(day),
    ]
    .into_iter()
    .collect()
}

/// Matches their lines, as they are read, against our month held in memory: each line
/// of theirs takes the first row of ours with its key that no line took before. That
/// pairs the k-th of ours with a key with the k-th of theirs with it, whichever side
/// leads; their side leads so that the file, which takes longest, can be read while
/// the matching goes on.
pub struct Matcher<'m> {
    mapping: &'m Mapping,
    /// Ours in chunks of [`OURS_CHUNK`], freed one by one as the outcome takes them.
    ours: Vec<Vec<OurRow>>,
    count: usize,
    /// Per key, the first row of ours no line took yet; `next` chains a key's rows.
    first: foldhash::HashMap<Text, u32>,
    next: Vec<u32>,
    /// Per row of ours, the index in `theirs` of the line that took it.
    took: Vec<u32>,
    theirs: Vec<TheirRow>,
    /// Why a row of ours and its line differ, per row of ours.
    reasons: Vec<(u32, String)>,
    /// Their dates as read, a month of them repeated on every line.
    days: foldhash::HashMap<Text, Option<Text>>,
    /// Where our keys are normalised.
    key: String,
}

const END: u32 = u32::MAX;

/// Our rows held per chunk (see [`Matcher`]).
const OURS_CHUNK: usize = 16_384;

impl<'m> Matcher<'m> {
    pub fn new(mapping: &'m Mapping) -> Self {
        Matcher {
            mapping,
            ours: Vec::new(),
            count: 0,
            first: foldhash::HashMap::default(),
            next: Vec::new(),
            took: Vec::new(),
            theirs: Vec::new(),
            reasons: Vec::new(),
            days: foldhash::HashMap::default(),
            key: String::new(),
        }
    }

    /// Adds a row of ours; all come before the first line of theirs is taken.
    pub fn add_ours(&mut self, o: OurRow) {
        match self.ours.last_mut() {
            Some(chunk) if chunk.len() < OURS_CHUNK => chunk.push(o),
            _ => {
                let mut chunk = Vec::with_capacity(OURS_CHUNK);
                chunk.push(o);
                self.ours.push(chunk);
            }
        }
        self.count += 1;
    }

    fn our(&self, i: usize) -> &OurRow {
        &self.ours[i / OURS_CHUNK][i % OURS_CHUNK]
    }

    /// Indexes ours by key, none taken; forgets any line taken so far.
    pub fn index(&mut self) {
        let by_pos_id = self.mapping.pos_id.is_some();
        self.first.clear();
        self.first.reserve(self.count);
        self.next = vec![END; self.count];
        self.took = vec![END; self.count];
        self.theirs.clear();
        self.reasons.clear();
        // From the last row up: each row's key points at it, and it at the row that
        // held the key before.
        for i in (0..self.count).rev() {
            let o = &self.ours[i / OURS_CHUNK][i % OURS_CHUNK];
            let key = normalise_key(if by_pos_id { &o.pos_id } else { &o.point_code }, &mut self.key);
            self.next[i] = self.first.insert(key, i as u32).unwrap_or(END);
        }
    }

    /// Takes one line of theirs: pairs it with the first free row of ours with its key.
    pub fn take(&mut self, t: TheirRow) {
        let j = self.theirs.len() as u32;
        let paired = match self.first.get_mut(&t.key) {
            Some(head) if *head != END => {
                let i = *head as usize;
                *head = self.next[i];
                Some(i)
            }
            _ => None,
        };
        let Some(i) = paired else {
            self.theirs.push(t);
            return;
        };
        self.took[i] = j;
        let m = self.mapping;
        let o = self.our(i);
        let merchant_differs = m.merchant.is_some()
            && !t.merchant.is_empty()
            && t.merchant != o.merchant
            && fold(&t.merchant) != fold(&o.merchant);
        let date_differs = m.date.is_some() && !t.date.is_empty() && !t.date.starts_with(o.date.as_str()) && {
            let ours = o.date.clone();
            !self.same_day(&t.date, &ours)
        };
        if merchant_differs || date_differs {
            let o = self.our(i);
            let mut reasons = Vec::new();
            if merchant_differs {
                reasons.push(format!("merchant “{}” ≠ “{}”", t.merchant, o.merchant));
            }
            if date_differs {
                reasons.push(format!("ngày {} ≠ {}", t.date, o.date));
            }
            self.reasons.push((i as u32, reasons.join("; ")));
            self.theirs.push(t);
        } else {
            // Their cells say what ours do: the line number is all that is kept.
            self.theirs.push(TheirRow { line: t.line, ..TheirRow::default() });
        }
    }

    /// Their dd/mm/yyyy (the way Vietnamese statements write it) is our yyyy-mm-dd.
    fn same_day(&mut self, theirs: &Text, ours: &str) -> bool {
        let day = self
            .days
            .entry(theirs.clone())
            .or_insert_with(|| chrono::NaiveDate::parse_from_str(theirs.trim(), "%d/%m/%Y").ok().map(iso_date));
        day.as_deref() == Some(ours)
    }

    /// The outcome: matched, differing and only ours in our order; their lines no row
    /// of ours took, in the statement's order.
    pub fn finish(self) -> Outcome {
        let Matcher { ours, took, mut theirs, mut reasons, first, next, .. } = self;
        // The index is done with: freed before the outcome grows.
        drop((first, next));
        let mut out = Outcome::default();
        out.matched.reserve_exact(took.iter().filter(|j| **j != END).count().saturating_sub(reasons.len()));
        reasons.sort_unstable_by_key(|r| r.0);
        let mut reasons = reasons.into_iter().peekable();
        // Chunk by chunk: each is freed once the outcome holds its rows.
        for (i, o) in ours.into_iter().flatten().enumerate() {
            // Nothing took a row when ours were never indexed.
            let j = took.get(i).copied().unwrap_or(END);
            if j == END {
                out.only_ours.push(o);
            } else if let Some((_, why)) = reasons.next_if(|r| r.0 as usize == i) {
                out.differing.push((o, std::mem::take(&mut theirs[j as usize]), why));
            } else {
                out.matched.push((o, TheirLine { line: theirs[j as usize].line }));
            }
        }
        let mut taken = vec![false; theirs.len()];
        took.iter().filter(|j| **j != END).for_each(|j| taken[*j as usize] = true);
        out.only_theirs = theirs.into_iter().zip(taken).filter(|(_, taken)| !taken).map(|(t, _)| t).collect();
        out
    }
}

/// Matches our connections of the month against their statement's lines.
pub fn reconcile(ours: impl IntoIterator<Item = OurRow>, theirs: Vec<TheirRow>, m: &Mapping) -> Outcome {
    let mut matcher = Matcher::new(m);
    ours.into_iter().for_each(|o| matcher.add_ours(o));
    matcher.index();
    theirs.into_iter().for_each(|t| matcher.take(t));
    matcher.finish()
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = reconciliations)]
pub struct Reconciliation {
    pub id: i64,
    pub partner_id: i64,
    pub month: String,
    pub file_name: String,
    pub mapping: Option<String>,
    pub matched: i64,
    pub only_ours: i64,
    pub only_theirs: i64,
    pub differing: i64,
    pub created_by: Option<i64>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub run_at: Option<NaiveDateTime>,
}

/// Keeps the uploaded statement (it must at least be readable).
pub fn upload(
    conn: &mut DbConn,
    actor: &Actor,
    partner_id: i64,
    month: &str,
    file_name: &str,
    bytes: &[u8],
) -> AppResult<i64> {
    super::Month::parse(month).ok_or_else(|| AppError::Validation("Tháng không hợp lệ (dạng 2026-10).".into()))?;
    // Readable, with data: the whole file is read, only its first row kept.
    crate::sheets::read_head(bytes, file_name, 1).map_err(AppError::Validation)?;
    crate::db::tx(conn, |conn| {
        let id: i64 = diesel::insert_into(reconciliations::table)
            .values((
                reconciliations::partner_id.eq(partner_id),
                reconciliations::month.eq(month.trim()),
                reconciliations::file_name.eq(file_name),
                reconciliations::file.eq(bytes),
                reconciliations::created_by.eq(actor.user_id),
                reconciliations::created_at.eq(crate::db::now()),
            ))
            .returning(reconciliations::id)
            .get_result(conn)?;
        audit::record(
            conn,
            actor,
            "reconciliation",
            id,
            "upload",
            None,
            Some(serde_json::json!({"file": file_name, "month": month})),
        )?;
        Ok(id)
    })
}

pub fn get(conn: &mut DbConn, id: i64) -> QueryResult<Reconciliation> {
    reconciliations::table.find(id).select(Reconciliation::as_select()).first(conn)
}

/// A saved outcome's JSON as it is read: from the compressed bytes, or from the text
/// an older run saved.
enum Saved {
    Packed(zstd::Decoder<'static, std::io::BufReader<std::io::Cursor<Vec<u8>>>>),
    Text(std::io::Cursor<Vec<u8>>),
}

impl std::io::Read for Saved {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Saved::Packed(d) => d.read(buf),
            Saved::Text(t) => t.read(buf),
        }
    }
}

/// The saved outcome's JSON, `None` before the first run.
fn saved(conn: &mut DbConn, id: i64) -> AppResult<Option<std::io::BufReader<Saved>>> {
    let (text, packed): (Option<String>, Option<Vec<u8>>) =
        reconciliations::table.find(id).select((reconciliations::result, reconciliations::result_zst)).first(conn)?;
    let saved = match (packed, text) {
        (Some(packed), _) => {
            Saved::Packed(zstd::Decoder::new(std::io::Cursor::new(packed)).map_err(AppError::internal)?)
        }
        (None, Some(text)) => Saved::Text(std::io::Cursor::new(text.into_bytes())),
        (None, None) => return Ok(None),
    };
    Ok(Some(std::io::BufReader::with_capacity(1 << 16, saved)))
}

/// The first [`SHOWN`] lines of each list, as they are saved for the page beside the
/// whole outcome.
#[derive(Serialize)]
struct SavedHead<'a> {
    matched: &'a [(OurRow, TheirLine)],
    only_ours: &'a [OurRow],
    only_theirs: &'a [TheirRow],
    differing: &'a [(OurRow, TheirRow, String)],
}

impl<'a> SavedHead<'a> {
    fn of(o: &'a Outcome) -> Self {
        fn head<T>(list: &[T]) -> &[T] {
            &list[..list.len().min(SHOWN)]
        }
        SavedHead {
            matched: head(&o.matched),
            only_ours: head(&o.only_ours),
            only_theirs: head(&o.only_theirs),
            differing: head(&o.differing),
        }
    }
}

/// What the result page shows of the saved outcome: the first [`SHOWN`] lines of each
/// list and the lists' lengths. `None` before the first run or if it cannot be read.
pub fn saved_head(conn: &mut DbConn, r: &Reconciliation) -> AppResult<Option<OutcomeHead>> {
    let saved: Option<String> = reconciliations::table.find(r.id).select(reconciliations::result_head).first(conn)?;
    let Some(mut head) = saved.and_then(|s| serde_json::from_str::<OutcomeHead>(&s).ok()) else {
        // Saved before the head was: read through the whole outcome.
        return saved_outcome(conn, r.id);
    };
    // The lengths are the run's counts; the saved head holds only the first lines.
    head.matched.total = r.matched as usize;
    head.only_ours.total = r.only_ours as usize;
    head.only_theirs.total = r.only_theirs as usize;
    head.differing.total = r.differing as usize;
    Ok(Some(head))
}

/// The saved outcome of a run, read as `T` ([`Outcome`], or [`OutcomeHead`] for the
/// page); `None` before the first run or if it cannot be read.
pub fn saved_outcome<T: serde::de::DeserializeOwned>(conn: &mut DbConn, id: i64) -> AppResult<Option<T>> {
    Ok(saved(conn, id)?.and_then(|r| serde_json::from_reader(r).ok()))
}

/// The outcome as it is saved: JSON, compressed as it is written (it is never held
/// whole as text).
fn packed(outcome: &Outcome) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = zstd::Encoder::new(Vec::new(), OUTCOME_LEVEL)?;
    // Compressed on a thread of zstd's own while this one writes the JSON.
    encoder.multithread(1)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, encoder);
    serde_json::to_writer(&mut out, outcome)?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.finish()
}

const OUTCOME_LEVEL: i32 = 1;

pub fn file(conn: &mut DbConn, id: i64) -> QueryResult<(String, Vec<u8>)> {
    reconciliations::table.find(id).select((reconciliations::file_name, reconciliations::file)).first(conn)
}

pub fn recent(conn: &mut DbConn) -> QueryResult<Vec<Reconciliation>> {
    reconciliations::table.order(reconciliations::id.desc()).limit(50).select(Reconciliation::as_select()).load(conn)
}

pub fn saved_mapping(conn: &mut DbConn, partner_id: i64) -> QueryResult<Option<Mapping>> {
    let m: Option<String> =
        recon_mappings::table.find(partner_id).select(recon_mappings::mapping).first(conn).optional()?;
    Ok(m.and_then(|s| serde_json::from_str(&s).ok()))
}

/// Runs the match with `mapping`, saves the outcome and the mapping for the partner.
pub fn run(conn: &mut DbConn, actor: &Actor, id: i64, mapping: &Mapping) -> AppResult<Outcome> {
    let r = get(conn, id)?;
    let (name, bytes) = file(conn, id)?;
    let month = super::Month::parse(&r.month).ok_or(AppError::NotFound)?;
    // Their file is read on a thread of its own and its lines handed over in batches,
    // while our month is read from the database on this one; then the lines are taken
    // as they come, most of them while the file is still being read.
    let matcher = std::thread::scope(|scope| -> AppResult<Matcher> {
        let (send, lines) = std::sync::mpsc::channel();
        let reader = scope.spawn(move || {
            each_their_line(&bytes, &name, mapping, &mut |batch| {
                // Nobody listens once ours failed to read: the error is returned below.
                let _ = send.send(batch);
            })
        });
        let mut matcher = Matcher::new(mapping);
        super::each_month_row(conn, month, Some(r.partner_id), &mut |row| {
            matcher.add_ours(our_row(row));
            Ok(())
        })?;
        matcher.index();
        for batch in lines {
            match batch {
                TheirLines::Lines(v) => v.into_iter().for_each(|t| matcher.take(t)),
                TheirLines::Again => matcher.index(),
            }
        }
        let read = reader.join().map_err(|_| AppError::internal(anyhow::anyhow!("reading the statement panicked")))?;
        read.map_err(AppError::Validation)?;
        Ok(matcher)
    })?;
    let outcome = matcher.finish();
    let mapping_json = serde_json::to_string(mapping).map_err(AppError::internal)?;
    let result = packed(&outcome).map_err(AppError::internal)?;
    let head = serde_json::to_string(&SavedHead::of(&outcome)).map_err(AppError::internal)?;
    crate::db::tx(conn, |conn| -> AppResult<()> {
        let t = crate::db::now();
        diesel::update(reconciliations::table.find(id))
            .set((
                reconciliations::mapping.eq(Some(&mapping_json)),
                reconciliations::result.eq(None::<String>),
                reconciliations::result_zst.eq(Some(&result)),
                reconciliations::result_head.eq(Some(&head)),
                reconciliations::matched.eq(outcome.matched.len() as i64),
                reconciliations::only_ours.eq(outcome.only_ours.len() as i64),
                reconciliations::only_theirs.eq(outcome.only_theirs.len() as i64),
                reconciliations::differing.eq(outcome.differing.len() as i64),
                reconciliations::run_at.eq(Some(t)),
            ))
            .execute(conn)?;
        crate::with_conn!(conn, |c| diesel::insert_into(recon_mappings::table)
            .values((
                recon_mappings::partner_id.eq(r.partner_id),
                recon_mappings::mapping.eq(&mapping_json),
                recon_mappings::updated_at.eq(t)
            ))
            .on_conflict(recon_mappings::partner_id)
            .do_update()
            .set((recon_mappings::mapping.eq(&mapping_json), recon_mappings::updated_at.eq(t)))
            .execute(c))?;
        audit::record(
            conn,
            actor,
            "reconciliation",
            id,
            "run",
            None,
            Some(
                serde_json::json!({"matched": outcome.matched.len(), "only_ours": outcome.only_ours.len(), "only_theirs": outcome.only_theirs.len(), "differing": outcome.differing.len()}),
            ),
        )?;
        Ok(())
    })?;
    Ok(outcome)
}

fn our(o: &OurRow) -> [&str; 6] {
    [o.merchant.as_str(), o.point.as_str(), o.pos_id.as_str(), o.point_code.as_str(), o.date.as_str(), o.pyc.as_str()]
}

/// A line of a saved outcome's list, written to its sheet.
trait SheetLine {
    fn write(&self, s: &mut rust_xlsxwriter::Worksheet, row: u32) -> Result<(), rust_xlsxwriter::XlsxError>;
}

fn cells(s: &mut rust_xlsxwriter::Worksheet, row: u32, cells: &[&str]) -> Result<(), rust_xlsxwriter::XlsxError> {
    for (c, v) in cells.iter().enumerate() {
        s.write_string(row, c as u16, *v)?;
    }
    Ok(())
}

// Matched: ours (their line, whole in older outcomes, is not shown).
impl SheetLine for (OurRow, serde::de::IgnoredAny) {
    fn write(&self, s: &mut rust_xlsxwriter::Worksheet, row: u32) -> Result<(), rust_xlsxwriter::XlsxError> {
        cells(s, row, &our(&self.0))
    }
}

impl SheetLine for OurRow {
    fn write(&self, s: &mut rust_xlsxwriter::Worksheet, row: u32) -> Result<(), rust_xlsxwriter::XlsxError> {
        cells(s, row, &our(self))
    }
}

impl SheetLine for TheirRow {
    fn write(&self, s: &mut rust_xlsxwriter::Worksheet, row: u32) -> Result<(), rust_xlsxwriter::XlsxError> {
        cells(s, row, &[self.line.to_string().as_str(), &self.key, &self.merchant, &self.date])
    }
}

impl SheetLine for (OurRow, TheirRow, String) {
    fn write(&self, s: &mut rust_xlsxwriter::Worksheet, row: u32) -> Result<(), rust_xlsxwriter::XlsxError> {
        let [m, p, pos, code, date, pyc] = our(&self.0);
        cells(s, row, &[m, p, pos, code, date, pyc, &self.2])
    }
}

/// Writes each item of a list to the sheet as it is read, under the header row.
struct ToSheet<'a, T>(&'a mut rust_xlsxwriter::Worksheet, std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de> + SheetLine> serde::de::DeserializeSeed<'de> for ToSheet<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de> + SheetLine> serde::de::Visitor<'de> for ToSheet<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = 1;
        while let Some(item) = seq.next_element::<T>()? {
            item.write(self.0, row).map_err(serde::de::Error::custom)?;
            row += 1;
        }
        Ok(())
    }
}

/// Writes a saved outcome's four lists to their sheets as they are read.
struct ToSheets<'a>(&'a mut [rust_xlsxwriter::Worksheet; 4]);

impl<'de> serde::de::DeserializeSeed<'de> for ToSheets<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ToSheets<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an outcome")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use std::marker::PhantomData;
        let [matched, only_ours, only_theirs, differing] = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "matched" => map.next_value_seed(ToSheet::<(OurRow, serde::de::IgnoredAny)>(matched, PhantomData))?,
                "only_ours" => map.next_value_seed(ToSheet::<OurRow>(only_ours, PhantomData))?,
                "only_theirs" => map.next_value_seed(ToSheet::<TheirRow>(only_theirs, PhantomData))?,
                "differing" => map.next_value_seed(ToSheet::<(OurRow, TheirRow, String)>(differing, PhantomData))?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The saved outcome as a workbook, one sheet per verdict; `None` before the first run
/// or if it cannot be read. Written as the outcome is read, to sheets that keep their
/// rows in temporary files: at a million lines, neither is held whole.
pub fn outcome_xlsx(conn: &mut DbConn, id: i64) -> AppResult<Option<Vec<u8>>> {
    use rust_xlsxwriter::{Format, Workbook, Worksheet};
    let Some(saved) = saved(conn, id)? else {
        return Ok(None);
    };
    let x = |e: rust_xlsxwriter::XlsxError| AppError::internal(anyhow::anyhow!("xlsx: {e}"));
    let mut book = Workbook::new();
    let bold = Format::new().set_bold().set_background_color("DDEBF7");
    let ours_head = ["Merchant", "Điểm", "POS ID", "Mã điểm", "Ngày kết nối", "Số PYC"];
    let mut diff_head = ours_head.to_vec();
    diff_head.push("Khác nhau");
    let mut sheet = |name: &str, head: &[&str]| -> AppResult<Worksheet> {
        let mut s = book.new_worksheet_with_constant_memory().map_err(x)?;
        s.set_name(name).map_err(x)?;
        for (c, h) in head.iter().enumerate() {
            s.set_column_width(c as u16, 22).map_err(x)?;
            s.write_string_with_format(0, c as u16, *h, &bold).map_err(x)?;
        }
        s.set_freeze_panes(1, 0).map_err(x)?;
        Ok(s)
    };
    let mut sheets = [
        sheet("Khớp", &ours_head)?,
        sheet("Chỉ có bên mình", &ours_head)?,
        sheet("Chỉ có bên đối tác", &["Dòng", "Mã", "Merchant", "Ngày"])?,
        sheet("Lệch thông tin", &diff_head)?,
    ];
    let mut json = serde_json::Deserializer::from_reader(saved);
    if serde::de::DeserializeSeed::deserialize(ToSheets(&mut sheets), &mut json).is_err() {
        return Ok(None);
    }
    for s in sheets {
        book.push_worksheet(s);
    }
    book.save_to_buffer().map(Some).map_err(x)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::sheets::{MAX_COLS, read};

    /// A small workbook: a title row, then the header and two lines from column B.
    fn workbook() -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        let _ = sheet.set_name("Bang ke");
        let _ = sheet.write_string(0, 1, "BẢNG KÊ THÁNG 10");
        for (c, h) in ["POS ID", "Mã điểm", "Merchant"].iter().enumerate() {
            let _ = sheet.write_string(2, 1 + c as u16, *h);
        }
        let _ = sheet.write_string(3, 1, "POS-0012");
        let _ = sheet.write_string(3, 3, "Phở Thìn");
        let _ = sheet.write_number(4, 1, 77.0);
        book.save_to_buffer().unwrap_or_default()
    }

    /// The workbook with its first sheet's XML changed by `edit`.
    fn rewritten(bytes: &[u8], edit: impl Fn(String) -> String) -> Vec<u8> {
        use std::io::{Read, Write};
        let mut zin = zip::ZipArchive::new(Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..zin.len() {
            let mut f = zin.by_index(i).unwrap_or_else(|e| panic!("{e}"));
            let name = f.name().map(|n| n.to_string()).unwrap_or_default();
            let mut data = Vec::new();
            let _ = f.read_to_end(&mut data);
            if name == "xl/worksheets/sheet1.xml" {
                data = edit(String::from_utf8_lossy(&data).to_string()).into_bytes();
            }
            let _ = out.start_file(name, zip::write::SimpleFileOptions::default());
            let _ = out.write_all(&data);
        }
        out.finish().map(|c| c.into_inner()).unwrap_or_default()
    }

    #[test]
    fn a_declared_dimension_sizes_nothing() {
        let plain = read(&workbook(), "t.xlsx").unwrap_or_else(|e| panic!("{e}"));
        let rows = &plain[0].rows;
        assert_eq!(rows[0][0], "BẢNG KÊ THÁNG 10", "the sheet starts at its first used row and column");
        assert_eq!(rows[3][..3], ["POS-0012".to_string(), String::new(), "Phở Thìn".to_string()]);
        assert_eq!(rows[4][0], "77");
        // 1.6 KB that claims every cell Excel can hold: read as the cells it has.
        let claims = rewritten(&workbook(), |xml| {
            let start = xml.find("<dimension").unwrap_or(0);
            let end = start + xml[start..].find("/>").unwrap_or(0) + 2;
            let xml = format!("{}<dimension ref=\"A1:XFD1048576\"/>{}", &xml[..start], &xml[end..]);
            // And a cell in that far corner: a dense range from A1 would be 17 billion cells.
            xml.replace(
                "</sheetData>",
                "<row r=\"1048576\"><c r=\"XFD1048576\" t=\"inlineStr\"><is><t>x</t></is></c></row></sheetData>",
            )
        });
        assert!(String::from_utf8_lossy(&claims).len() < 20_000);
        let read_back = read(&claims, "t.xlsx").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_back[0].rows[..plain[0].rows.len()], plain[0].rows[..]);
        // A cell in column XFD is ignored; one past the row bound is refused.
        let far_right = rewritten(&workbook(), |xml| {
            xml.replace(
                "</sheetData>",
                "<row r=\"9\"><c r=\"XFD9\" t=\"inlineStr\"><is><t>x</t></is></c></row></sheetData>",
            )
        });
        let sheets = read(&far_right, "t.xlsx").unwrap_or_else(|e| panic!("{e}"));
        assert!(sheets[0].rows.iter().all(|r| r.len() <= MAX_COLS as usize));
        let far_down = rewritten(&workbook(), |xml| {
            xml.replace(
                "</sheetData>",
                "<row r=\"1200000\"><c r=\"A1200000\" t=\"inlineStr\"><is><t>x</t></is></c></row></sheetData>",
            )
        });
        let refused = read(&far_down, "t.xlsx").err().unwrap_or_default();
        assert!(refused.contains("quá nhiều dòng"), "{refused}");
    }

    /// A statement whose title and table start in column B, with a note under the
    /// table in column A: the sheet's origin is A1, so the mapping counts from A.
    fn noted_statement() -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        let _ = sheet.set_name("Bang ke");
        let _ = sheet.write_string(0, 1, "BẢNG KÊ THÁNG 10");
        let _ = sheet.write_string(2, 1, "Mã POS");
        let _ = sheet.write_string(2, 2, "Merchant");
        let _ = sheet.write_string(2, 3, "Ngày");
        for (r, (pos, merchant, day)) in
            [("pos-0012", "Phở Thìn", "10/10/2026"), ("POS-7", "Bún Chả", "11/10/2026"), ("pos-12", "Phở Thìn 2", "")]
                .into_iter()
                .enumerate()
        {
            let _ = sheet.write_string(3 + r as u32, 1, pos);
            let _ = sheet.write_string(3 + r as u32, 2, merchant);
            let _ = sheet.write_string(3 + r as u32, 3, day);
        }
        let _ = sheet.write_string(8, 0, "Ghi chú: số liệu tạm tính");
        let _ = book.add_worksheet().set_name("Khac").map(|s| s.write_string(0, 0, "x"));
        book.save_to_buffer().unwrap_or_default()
    }

    fn mapped() -> Mapping {
        Mapping {
            sheet: "Bang ke".into(),
            header_row: 2,
            pos_id: Some(1),
            point_code: None,
            merchant: Some(2),
            date: Some(3),
        }
    }

    fn ours(key: &str, merchant: &str, date: &str, pyc: &str) -> OurRow {
        OurRow {
            pos_id: key.into(),
            merchant: merchant.into(),
            date: date.into(),
            pyc: pyc.into(),
            ..Default::default()
        }
    }

    #[test]
    fn their_lines_are_read_from_the_sheets_origin_with_excels_line_numbers() {
        let bytes = noted_statement();
        // The preview the mapping was chosen on: the sheet starts at A1.
        let preview = crate::sheets::read_head(&bytes, "t.xlsx", 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(preview[0].rows.len(), 3, "only the head is kept");
        assert_eq!(preview[0].rows[2][1..], ["Mã POS".to_string(), "Merchant".into(), "Ngày".into()]);
        let theirs = their_rows(&bytes, "t.xlsx", &mapped()).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(usize, &str, &str, &str)> =
            theirs.iter().map(|t| (t.line, t.key.as_str(), t.merchant.as_str(), t.date.as_str())).collect();
        assert_eq!(
            got,
            [
                (4, "POS-12", "Phở Thìn", "10/10/2026"),
                (5, "POS-7", "Bún Chả", "11/10/2026"),
                (6, "POS-12", "Phở Thìn 2", "")
            ]
        );
        let mut wide = mapped();
        wide.date = Some(4);
        let refused = their_rows(&bytes, "t.xlsx", &wide).err().unwrap_or_default();
        assert_eq!(refused, "Cột ngày đã chọn không có trong trang “Bang ke”.");
        let mut elsewhere = mapped();
        elsewhere.sheet = "Sheet9".into();
        assert_eq!(
            their_rows(&bytes, "t.xlsx", &elsewhere).err().unwrap_or_default(),
            "Không có trang “Sheet9” trong tệp."
        );
    }

    #[test]
    fn each_line_of_theirs_is_taken_once_in_order() {
        let bytes = noted_statement();
        let m = mapped();
        let theirs = their_rows(&bytes, "t.xlsx", &m).unwrap_or_else(|e| panic!("{e}"));
        let outcome = reconcile(
            [
                ours("POS-12", "PHỞ THÌN", "2026-10-10", "PYC-1"),
                ours("POS-0012", "Phở Thìn", "2026-10-09", "PYC-2"),
                ours("POS-12", "Phở Thìn", "2026-10-10", "PYC-3"),
                ours("POS-8", "Cơm", "2026-10-10", "PYC-4"),
            ],
            theirs,
            &m,
        );
        let pycs = |rows: Vec<&OurRow>| rows.iter().map(|o| o.pyc.to_string()).collect::<Vec<_>>();
        // Line 4 (same merchant, folded; same day) and line 6 (no date given) match.
        assert_eq!(pycs(outcome.matched.iter().map(|m| &m.0).collect()), ["PYC-1"]);
        assert_eq!(
            outcome.differing.iter().map(|d| (d.0.pyc.as_str(), d.1.line, d.2.as_str())).collect::<Vec<_>>(),
            [("PYC-2", 6, "merchant “Phở Thìn 2” ≠ “Phở Thìn”")]
        );
        assert_eq!(pycs(outcome.only_ours.iter().collect()), ["PYC-3", "PYC-4"]);
        assert_eq!(outcome.only_theirs.iter().map(|t| t.line).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn lines_read_again_are_matched_afresh() {
        let m = mapped();
        let theirs = their_rows(&noted_statement(), "t.xlsx", &m).unwrap_or_else(|e| panic!("{e}"));
        let ours =
            || [ours("POS-12", "Phở Thìn", "2026-10-10", "PYC-1"), ours("POS-7", "Bún Chả", "2026-10-11", "PYC-2")];
        let fresh = reconcile(ours(), theirs.clone(), &m);
        assert_eq!((fresh.matched.len(), fresh.only_theirs.len()), (2, 1), "{fresh:?}");
        // As `each_their_line` hands them when the sheet's origin moved: lines taken
        // from the wrong columns, then all of them again.
        let mut matcher = Matcher::new(&m);
        ours().into_iter().for_each(|o| matcher.add_ours(o));
        matcher.index();
        matcher.take(TheirRow { line: 9, key: "POS-12".into(), merchant: "Sai cột".into(), ..Default::default() });
        matcher.take(TheirRow { line: 10, key: "POS-7".into(), ..Default::default() });
        matcher.take(TheirRow { line: 11, key: "POS-99".into(), ..Default::default() });
        matcher.index();
        theirs.into_iter().for_each(|t| matcher.take(t));
        assert_eq!(matcher.finish(), fresh);
    }

    #[test]
    fn the_page_reads_the_head_of_each_list() {
        let outcome = Outcome {
            matched: vec![(OurRow::default(), TheirLine::default()); 3],
            only_ours: (0..SHOWN + 50).map(|i| ours("POS-1", "", "", &format!("PYC-{i}"))).collect(),
            ..Default::default()
        };
        let json = serde_json::to_string(&outcome).unwrap_or_default();
        let head: OutcomeHead = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((head.matched.total, head.matched.items.len()), (3, 3));
        assert_eq!((head.only_ours.total, head.only_ours.items.len(), head.only_ours.rest()), (SHOWN + 50, SHOWN, 50));
        assert_eq!(head.only_ours.items[SHOWN - 1].pyc, format!("PYC-{}", SHOWN - 1));
        assert_eq!((head.only_theirs.total, head.differing.total), (0, 0));
    }

    #[test]
    fn codes_compare_without_case_spaces_and_zeros() {
        let normalise_key = |s: &str| normalise_key(s, &mut String::new());
        assert_eq!(normalise_key("pos-0012 "), normalise_key("POS-12"));
        assert_eq!(normalise_key("000123"), normalise_key("123"));
        assert_ne!(normalise_key("POS-12"), normalise_key("POS-120"));
        // A code that ends in a letter is kept whole: no "0" is made up after it.
        assert_eq!(normalise_key("pos-a"), "POS-A");
        assert_ne!(normalise_key("POS-A"), normalise_key("POS-A0"));
        // A number after a letter of several bytes: cut after the letter, not inside it.
        assert_eq!(normalise_key("phở 007"), "PHỞ7");
        assert_eq!(normalise_key("Mã 000"), "MÃ0");
    }
}
