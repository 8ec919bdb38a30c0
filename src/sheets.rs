//! Reading people's spreadsheets (xlsx, xlsb, xls, ods with calamine; csv with the csv
//! crate after decoding UTF-8, UTF-16 or windows-1258), row by row and within bounds:
//! a sheet's declared dimension never sizes anything, an encrypted workbook is named as
//! such, and every error is a sentence for people, in Vietnamese. Used by the partner
//! reconciliation and the bank statement import.

use std::io::Cursor;

use calamine::{Data, DataRef, Reader, open_workbook_auto_from_rs};

/// A sheet read into text cells.
pub struct Sheet {
    pub name: String,
    pub rows: Vec<Vec<String>>,
}

/// Columns beyond this are ignored (a statement has a few dozen).
pub const MAX_COLS: u32 = 256;
/// Rows and non-empty cells read from one sheet at most.
pub const MAX_ROWS: u32 = 1_100_000;
pub const MAX_CELLS: usize = 30_000_000;

pub const PROTECTED: &str = "Tệp được đặt mật khẩu; hãy lưu lại bản không mật khẩu rồi tải lên.";

/// What the reader of a row wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Next,
    /// The rest of this sheet is of no interest.
    SkipSheet,
    /// Nothing more is wanted from the file.
    Stop,
}

/// A cell's text: numbers as written (integers without `.0`), dates as `yyyy-mm-dd`
/// (with ` HH:MM:SS` when they have a time).
pub fn cell_text(d: &Data) -> String {
    let mut out = String::new();
    let borrowed = match d {
        Data::Empty => DataRef::Empty,
        Data::String(s) => DataRef::SharedString(s),
        Data::Float(f) => DataRef::Float(*f),
        Data::Int(i) => DataRef::Int(*i),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(dt) => DataRef::DateTime(*dt),
        Data::DateTimeIso(s) => DataRef::DateTimeIso(s.clone()),
        Data::DurationIso(s) => DataRef::DurationIso(s.clone()),
        Data::Error(e) => DataRef::Error(e.clone()),
    };
    push_text(&mut out, &borrowed);
    out
}

/// Appends a cell's text (as [`cell_text`] writes it) to `out`, without copying the
/// cell: the streaming reader fills the same buffers row after row.
fn push_text(out: &mut String, d: &DataRef<'_>) {
    use std::fmt::Write;
    // Writing into a String cannot fail.
    let _ = match d {
        DataRef::Empty => Ok(()),
        DataRef::String(s) => out.write_str(s.trim()),
        DataRef::SharedString(s) => out.write_str(s.trim()),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => write!(out, "{}", *f as i64),
        DataRef::Float(f) => write!(out, "{f}"),
        DataRef::Int(i) => write!(out, "{i}"),
        DataRef::Bool(b) => write!(out, "{b}"),
        DataRef::DateTime(dt) => match dt.as_datetime() {
            Some(d) if d.time() == chrono::NaiveTime::MIN => write!(out, "{}", d.format("%Y-%m-%d")),
            Some(d) => write!(out, "{}", d.format("%Y-%m-%d %H:%M:%S")),
            None => Ok(()),
        },
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => out.write_str(s),
        DataRef::Error(e) => write!(out, "#{e:?}"),
    };
}

/// Excel's "protect with password" puts the encrypted xlsx in an OLE container as an
/// `EncryptedPackage` stream; calamine only sees an OLE file without a workbook.
fn is_encrypted_ooxml(bytes: &[u8]) -> bool {
    const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    // Directory entry names are UTF-16LE.
    let stream: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
    bytes.starts_with(&OLE_MAGIC) && bytes.windows(stream.len()).any(|w| w == stream.as_slice())
}

/// Takes one row (its index, its cells) and says what to read next.
type RowSink<'s> = dyn FnMut(u32, &[String]) -> Result<Flow, String> + 's;

/// Groups a sheet's cells, as they stream by in row order, into rows handed to `on_row`
/// (row index, cells from column A); empty rows are not handed over. Bounded by
/// [`MAX_ROWS`], [`MAX_COLS`] and [`MAX_CELLS`], whatever the sheet declares.
fn stream_cells<'a>(
    mut next: impl FnMut() -> Result<Option<calamine::Cell<DataRef<'a>>>, String>,
    on_row: &mut RowSink<'_>,
) -> Result<Flow, String> {
    // The row's cells keep their buffers from row to row; `used` is how many the current
    // row has, and `text` is where the next cell is written before it joins the row.
    let mut row: Vec<String> = Vec::new();
    let mut used = 0usize;
    let mut text = String::new();
    let mut at: Option<u32> = None;
    let mut cells = 0usize;
    while let Some(cell) = next()? {
        let (r, c) = cell.get_position();
        if c >= MAX_COLS {
            continue;
        }
        text.clear();
        push_text(&mut text, cell.get_value());
        if text.is_empty() {
            continue;
        }
        if r >= MAX_ROWS {
            return Err(format!(
                "Trang tính có quá nhiều dòng (tối đa {} dòng).",
                crate::fmt::Count(i64::from(MAX_ROWS))
            ));
        }
        cells += 1;
        if cells > MAX_CELLS {
            return Err("Trang tính có quá nhiều ô dữ liệu.".into());
        }
        if at != Some(r) {
            if let Some(done) = at {
                let flow = on_row(done, &row[..used])?;
                if flow != Flow::Next {
                    return Ok(flow);
                }
            }
            row[..used].iter_mut().for_each(String::clear);
            used = 0;
            at = Some(r);
        }
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, String::new());
        }
        std::mem::swap(&mut row[c], &mut text);
        used = used.max(c + 1);
    }
    match at {
        Some(done) => on_row(done, &row[..used]),
        None => Ok(Flow::Next),
    }
}

/// Some banks' "xls" exports are an HTML page with tables, saved under the Excel
/// extension (Excel opens them). Told apart from the binary formats by their first bytes.
fn is_html(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head)).to_lowercase();
    let t = text.trim_start();
    t.starts_with('<') && ["<table", "<html", "<!doctype html"].iter().any(|m| t.contains(m))
}

/// The rows of an HTML page's tables, as html5ever's tokenizer reads them: one row per
/// `<tr>`, one cell per `<td>`/`<th>` (a `colspan` leaves empty cells after it), text
/// with its entities decoded and its whitespace collapsed.
#[derive(Default)]
struct HtmlRows {
    state: std::cell::RefCell<HtmlState>,
}

#[derive(Default)]
struct HtmlState {
    /// Rows complete and not yet handed over.
    done: Vec<Vec<String>>,
    row: Option<Vec<String>>,
    /// The open cell's text, and how many columns it spans.
    cell: Option<(String, usize)>,
    cells: usize,
    /// The page goes past [`MAX_CELLS`]: the reading stops with an error.
    too_big: bool,
    in_script: bool,
}

impl HtmlState {
    fn close_cell(&mut self) {
        if let (Some((text, span)), Some(row)) = (self.cell.take(), self.row.as_mut()) {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let room = (MAX_COLS as usize).saturating_sub(row.len());
            if room > 0 {
                row.push(text);
                row.extend(std::iter::repeat_n(String::new(), span.saturating_sub(1).min(room - 1)));
            }
        }
    }

    fn close_row(&mut self) {
        self.close_cell();
        if let Some(row) = self.row.take() {
            self.cells += row.len();
            self.too_big |= self.cells > MAX_CELLS;
            self.done.push(row);
        }
    }
}

impl html5ever::tokenizer::TokenSink for HtmlRows {
    type Handle = ();

    fn process_token(
        &self,
        token: html5ever::tokenizer::Token,
        _line: u64,
    ) -> html5ever::tokenizer::TokenSinkResult<()> {
        use html5ever::tokenizer::{TagKind, Token};
        let mut st = self.state.borrow_mut();
        match token {
            Token::TagToken(tag) => match (tag.kind, &*tag.name) {
                (TagKind::StartTag, "tr") => {
                    st.close_row();
                    st.row = Some(Vec::new());
                }
                (TagKind::EndTag, "tr" | "table") => st.close_row(),
                (TagKind::StartTag, "td" | "th") => {
                    st.close_cell();
                    if st.row.is_none() {
                        st.row = Some(Vec::new());
                    }
                    let span = tag
                        .attrs
                        .iter()
                        .find(|a| &*a.name.local == "colspan")
                        .and_then(|a| a.value.trim().parse::<usize>().ok())
                        .unwrap_or(1);
                    st.cell = Some((String::new(), span.max(1)));
                }
                (TagKind::EndTag, "td" | "th") => st.close_cell(),
                (TagKind::StartTag, "br" | "p" | "div") => {
                    if let Some((text, _)) = st.cell.as_mut() {
                        text.push(' ');
                    }
                }
                (TagKind::StartTag, "script" | "style") => st.in_script = true,
                (TagKind::EndTag, "script" | "style") => st.in_script = false,
                _ => {}
            },
            Token::CharacterTokens(t) if !st.in_script => {
                if let Some((text, _)) = st.cell.as_mut() {
                    // A cell's text is bounded as a spreadsheet's is (32,767 characters).
                    if text.len() < 32_767 {
                        text.push_str(&t);
                    }
                }
            }
            Token::EOFToken => st.close_row(),
            _ => {}
        }
        html5ever::tokenizer::TokenSinkResult::Continue
    }
}

/// Streams the rows of an HTML "xls" to `on_row`, a slice of the page at a time.
fn stream_html(
    bytes: &[u8],
    on_row: &mut impl FnMut(usize, &str, u32, &[String]) -> Result<Flow, String>,
) -> Result<(), String> {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, Tokenizer};
    let text = decode_text(bytes);
    let tokenizer = Tokenizer::new(HtmlRows::default(), Default::default());
    let input = BufferQueue::default();
    let mut index: u32 = 0;
    let mut rest = text.as_str();
    loop {
        let mut end = rest.len().min(64 * 1024);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (slice, after) = rest.split_at(end);
        rest = after;
        input.push_back(StrTendril::from_slice(slice));
        let _ = tokenizer.feed(&input);
        if rest.is_empty() {
            tokenizer.end();
        }
        let (rows, too_big) = {
            let mut st = tokenizer.sink.state.borrow_mut();
            (std::mem::take(&mut st.done), st.too_big)
        };
        if too_big {
            return Err("Trang tính có quá nhiều ô dữ liệu.".into());
        }
        for row in rows {
            if index >= MAX_ROWS {
                return Err(format!("Tệp có quá nhiều dòng (tối đa {} dòng).", crate::fmt::Count(i64::from(MAX_ROWS))));
            }
            // One sheet only: skipping its rest is stopping.
            if row.iter().any(|c| !c.is_empty()) && on_row(0, "HTML", index, &row)? != Flow::Next {
                return Ok(());
            }
            index += 1;
        }
        if rest.is_empty() {
            return Ok(());
        }
    }
}

/// Decodes a CSV file's text: a BOM says UTF-8 or UTF-16; otherwise UTF-8 when it is
/// valid, else windows-1258 (what Vietnamese Excel saves "CSV" as). Composed to NFC,
/// as windows-1258 writes tone marks as separate characters.
pub fn decode_text(bytes: &[u8]) -> String {
    let text = match encoding_rs::Encoding::for_bom(bytes) {
        Some((enc, bom)) => enc.decode_without_bom_handling(&bytes[bom..]).0,
        None => match std::str::from_utf8(bytes) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => encoding_rs::WINDOWS_1258.decode_without_bom_handling(bytes).0,
        },
    };
    crate::fmt::nfc(&text).into_owned()
}

/// The separator of a CSV text among `,` `;` and tab: the one that splits its first
/// lines into the most columns (a comma when none splits anything).
fn sniff_delimiter(text: &str) -> u8 {
    let head: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t'] {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(d).from_reader(head.as_bytes());
        let widest = reader.records().take(40).filter_map(Result::ok).map(|r| r.len()).max().unwrap_or(0);
        if widest > best.1 {
            best = (d, widest);
        }
    }
    best.0
}

fn is_csv(file_name: &str) -> bool {
    let lower = file_name.to_lowercase();
    lower.ends_with(".csv") || lower.ends_with(".txt") || lower.ends_with(".tsv")
}

/// Streams every non-empty row of every sheet to `on_row(sheet index, sheet name, row
/// index, cells)`. Errors are for people.
pub fn stream(
    bytes: &[u8],
    file_name: &str,
    mut on_row: impl FnMut(usize, &str, u32, &[String]) -> Result<Flow, String>,
) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("Tệp trống.".into());
    }
    if is_encrypted_ooxml(bytes) {
        return Err(PROTECTED.into());
    }
    if is_csv(file_name) {
        let text = decode_text(bytes);
        if text.contains('\0') {
            return Err("Tệp không đọc được: không phải văn bản CSV.".into());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(sniff_delimiter(&text))
            .from_reader(text.as_bytes());
        let mut record = csv::StringRecord::new();
        let mut row: Vec<String> = Vec::new();
        let mut index: u32 = 0;
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(format!("Tệp CSV không đọc được (dòng {}): {e}", index + 1)),
            }
            if index >= MAX_ROWS {
                return Err(format!("Tệp có quá nhiều dòng (tối đa {} dòng).", crate::fmt::Count(i64::from(MAX_ROWS))));
            }
            row.clear();
            row.extend(record.iter().take(MAX_COLS as usize).map(|c| c.trim().to_string()));
            // One sheet only: skipping its rest is stopping.
            if row.iter().any(|c| !c.is_empty()) && on_row(0, "CSV", index, &row)? != Flow::Next {
                break;
            }
            index += 1;
        }
        return Ok(());
    }
    if is_html(bytes) {
        return stream_html(bytes, &mut on_row);
    }
    let mut book = open_workbook_auto_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| {
        let msg = e.to_string().to_lowercase();
        if msg.contains("password") || msg.contains("encrypt") {
            PROTECTED.to_string()
        } else {
            "Tệp không đọc được: không phải xlsx, xls, xlsb, ods hay csv hợp lệ.".to_string()
        }
    })?;
    for (i, name) in book.sheet_names().into_iter().enumerate() {
        let unreadable = |_| format!("Không đọc được trang “{name}”.");
        let mut handler = |r: u32, cells: &[String]| on_row(i, &name, r, cells);
        // xlsx and xlsb are streamed cell by cell: a sheet's declared dimension (a 1.6 KB
        // file may claim A1:XFD1048576) never sizes anything.
        let flow = match &mut book {
            calamine::Sheets::Xlsx(x) => {
                let mut reader = x.worksheet_cells_reader(&name).map_err(|_| unreadable(()))?;
                stream_cells(|| reader.next_cell().map_err(|_| unreadable(())), &mut handler)?
            }
            calamine::Sheets::Xlsb(x) => {
                let mut reader = x.worksheet_cells_reader(&name).map_err(|_| unreadable(()))?;
                stream_cells(|| reader.next_cell().map_err(|_| unreadable(())), &mut handler)?
            }
            // xls is bounded by its format (65,536 × 256); ods is read whole by calamine.
            other => {
                let range = other.worksheet_range(&name).map_err(|_| unreadable(()))?;
                let (r0, c0) = range.start().unwrap_or((0, 0));
                let mut flow = Flow::Next;
                let mut row: Vec<String> = Vec::new();
                for (k, cells) in range.rows().enumerate() {
                    row.clear();
                    row.resize(c0 as usize, String::new());
                    row.extend(cells.iter().take((MAX_COLS.saturating_sub(c0)) as usize).map(cell_text));
                    if row.iter().any(|c| !c.is_empty()) {
                        flow = handler(r0 + k as u32, &row)?;
                        if flow != Flow::Next {
                            break;
                        }
                    }
                }
                flow
            }
        };
        if flow == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// Reads every sheet whole. As calamine's ranges do, each sheet starts at its first used
/// row and column (saved column mappings count from there).
pub fn read(bytes: &[u8], file_name: &str) -> Result<Vec<Sheet>, String> {
    read_head(bytes, file_name, usize::MAX)
}

/// [`read`], keeping only the first `limit` rows of each sheet: the whole file is read
/// (a sheet's first used column can be anywhere in it) but only the head is held.
pub fn read_head(bytes: &[u8], file_name: &str, limit: usize) -> Result<Vec<Sheet>, String> {
    struct Head {
        name: String,
        first_row: Option<u32>,
        first_col: usize,
        rows: Vec<(u32, Vec<String>)>,
    }
    let in_head = |first: u32, r: u32| r >= first && ((r - first) as usize) < limit;
    let mut heads: Vec<Head> = Vec::new();
    stream(bytes, file_name, |i, name, r, cells| {
        if heads.len() <= i {
            heads.resize_with(i + 1, || Head {
                name: String::new(),
                first_row: None,
                first_col: usize::MAX,
                rows: Vec::new(),
            });
            heads[i].name = name.to_string();
        }
        let h = &mut heads[i];
        h.first_col = h.first_col.min(cells.iter().position(|c| !c.is_empty()).unwrap_or(0));
        let first = h.first_row.map_or(r, |f| f.min(r));
        h.first_row = Some(first);
        if in_head(first, r) {
            h.rows.push((r, cells.to_vec()));
            // Rows come in order; a row above the others (rare) moves the head up.
            if h.rows.len() > limit.saturating_mul(2) {
                h.rows.retain(|(r, _)| in_head(first, *r));
            }
        }
        Ok(Flow::Next)
    })?;
    // A sheet without any cell has no rows to offer.
    let sheets: Vec<Sheet> = heads
        .into_iter()
        .filter(|h| !h.name.is_empty())
        .map(|mut h| {
            let first = h.first_row.unwrap_or(0);
            h.rows.retain(|(r, _)| in_head(first, *r));
            h.rows.sort_by_key(|(r, _)| *r);
            let mut rows: Vec<Vec<String>> = Vec::new();
            for (r, mut cells) in h.rows {
                let at = (r - first) as usize;
                if rows.len() <= at {
                    rows.resize_with(at + 1, Vec::new);
                }
                cells.drain(..h.first_col.min(cells.len()));
                rows[at] = cells;
            }
            Sheet { name: h.name, rows }
        })
        .collect();
    if sheets.iter().all(|s| s.rows.iter().all(|r| r.iter().all(String::is_empty))) {
        return Err("Tệp không có dữ liệu.".into());
    }
    Ok(sheets)
}
