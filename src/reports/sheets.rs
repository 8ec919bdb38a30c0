//! The month's workbook, written while the query runs.
//!
//! rust_xlsxwriter (which writes every other workbook here) keeps per-cell bookkeeping
//! (a B-tree per row, a format lookup, a formatted cell reference) and deflates a
//! constant-memory sheet only when the book is saved, after the last row: for a month of
//! a million connections that was 8 s of one core, the most of the download's time
//! (docs/PERFORMANCE.md). Here the ten columns are known ahead, so each row's XML goes
//! straight into its partner's deflate stream, and compression runs beside the query.
//! The few fixed parts around the sheets (content types, relationships, workbook,
//! styles) are written once at the end; the zip crate packs it all.
//!
//! Rows come in go-live order, every partner mixed, so each partner's sheet is its own
//! one-entry zip in an unnamed temporary file until the end, when the entries are
//! copied into the book compressed as they are.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, Write};

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::{HEADERS, Listed, Month, Row};
use crate::error::{AppError, AppResult};

/// Column widths come from the first rows of each sheet: the columns precede the rows
/// in a sheet's XML, and the rest is already compressed by the time the sheet ends.
const WIDTH_SAMPLE: usize = 1000;
/// Excel's limits: rows per sheet, characters per cell, characters per sheet name.
const MAX_ROWS: u32 = 1_048_576;
const MAX_TEXT: usize = 32_767;
const MAX_NAME: usize = 31;
/// Most XML a sheet gathers before it is handed to the compressor.
const CHUNK: usize = 64 * 1024;
/// Cell styles, in the order of `STYLES`' `cellXfs`.
const BOLD: u8 = 1;
const DATE: u8 = 2;
const LETTERS: [char; HEADERS.len()] = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'];
const DATE_COL: usize = 7;

const XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
const MAIN_NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const PKG_REL_NS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const MARGINS: &str = r#"<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>"#;
/// Plain, bold on light blue with a thin bottom border (headers and totals), and a date
/// and time aligned left.
const STYLES: &str = concat!(
    r#"<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
    r#"<numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy hh:mm"/></numFmts>"#,
    r#"<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>"#,
    r#"<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>"#,
    r#"<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>"#,
    r#"<fill><patternFill patternType="solid"><fgColor rgb="FFDDEBF7"/><bgColor indexed="64"/></patternFill></fill></fills>"#,
    r#"<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>"#,
    r#"<border><left/><right/><top/><bottom style="thin"><color auto="1"/></bottom><diagonal/></border></borders>"#,
    r#"<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>"#,
    r#"<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>"#,
    r#"<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>"#,
    r#"<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1" applyAlignment="1"><alignment horizontal="left"/></xf></cellXfs>"#,
    r#"<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>"#
);

fn io(e: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("xlsx: {e}"))
}

fn options() -> SimpleFileOptions {
    // Level 1: level 6 took half the time of a large month for a third fewer bytes.
    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).compression_level(Some(1))
}

/// `text` as XML character data. Characters XML cannot carry (controls other than tab
/// and line feed, U+FFFE, U+FFFF) are written as Excel writes them, `_xHHHH_`, and a
/// literal `_xHHHH_` gets its underscore escaped so that Excel shows it as typed.
fn escape(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut from = 0;
    // Byte by byte: every byte that may need escaping is ASCII, or 0xEF (the lead byte of
    // U+FFFE and U+FFFF), and never inside another character's UTF-8.
    for (i, &b) in bytes.iter().enumerate() {
        let swap: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'_' if is_excel_escape(&bytes[i..]) => b"_x005F_",
            b'\t' | b'\n' => continue,
            0..=0x1F => {
                out.extend_from_slice(&bytes[from..i]);
                let _ = write!(out, "_x{b:04X}_");
                from = i + 1;
                continue;
            }
            0xEF if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => {
                out.extend_from_slice(&bytes[from..i]);
                let _ = write!(out, "_xFFF{:X}_", bytes[i + 2] - 0xB0);
                from = i + 3;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(swap);
        // The `_` of an escape is replaced; the `x…_` after it is kept as text.
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

fn is_excel_escape(s: &[u8]) -> bool {
    s.len() >= 7 && s[1] == b'x' && s[2..6].iter().all(u8::is_ascii_hexdigit) && s[6] == b'_'
}

/// An inline string cell; long texts are cut at Excel's limit of 32,767 characters.
fn text_cell(out: &mut Vec<u8>, col: usize, row: &str, style: u8, text: &str) {
    // Up to MAX_TEXT bytes is up to MAX_TEXT characters: only longer texts are counted.
    let text = match text.len() > MAX_TEXT {
        true => text.char_indices().nth(MAX_TEXT).map_or(text, |(end, _)| &text[..end]),
        false => text,
    };
    out.extend_from_slice(b"<c r=\"");
    out.push(LETTERS[col] as u8);
    out.extend_from_slice(row.as_bytes());
    if style != 0 {
        out.extend_from_slice(b"\" s=\"");
        out.push(b'0' + style);
    }
    // Leading or trailing spaces are kept only when asked for.
    let edge = |b: Option<&u8>| b.is_some_and(|b| !b.is_ascii() || b.is_ascii_whitespace());
    let keep = (edge(text.as_bytes().first()) && text.starts_with(char::is_whitespace))
        || (edge(text.as_bytes().last()) && text.ends_with(char::is_whitespace));
    out.extend_from_slice(if keep {
        b"\" t=\"inlineStr\"><is><t xml:space=\"preserve\">"
    } else {
        b"\" t=\"inlineStr\"><is><t>"
    });
    escape(out, text);
    out.extend_from_slice(b"</t></is></c>");
}

fn number_cell(out: &mut Vec<u8>, col: usize, row: &str, style: u8, value: f64) {
    let _ = write!(out, "<c r=\"{}{row}\"", LETTERS[col]);
    if style != 0 {
        let _ = write!(out, " s=\"{style}\"");
    }
    let _ = write!(out, "><v>{value}</v></c>");
}

/// Excel's serial date: days since 30 December 1899, the time as a fraction of a day.
fn serial(at: NaiveDateTime) -> f64 {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    let days = (at.date() - epoch).num_days() as f64;
    days + f64::from(at.num_seconds_from_midnight()) / 86_400.0
}

/// A width in characters as Excel stores it (the padding of its default font).
fn col_width(chars: usize) -> f64 {
    let w = chars as f64;
    ((w * 7.0 + 5.0) / 7.0 * 256.0).trunc() / 256.0
}

/// One partner's sheet while its rows arrive.
struct Sheet {
    zip: ZipWriter<File>,
    /// The first rows, held until the widths are known; `None` once the head is written.
    held: Option<Vec<Row>>,
    widths: [usize; HEADERS.len()],
    /// Rows so far, the header included.
    rows: u32,
    xml: Vec<u8>,
}

impl Sheet {
    fn new() -> AppResult<Sheet> {
        let mut zip = ZipWriter::new(tempfile::tempfile().map_err(io)?);
        zip.start_file("sheet.xml", options()).map_err(io)?;
        Ok(Sheet {
            zip,
            held: Some(Vec::new()),
            widths: HEADERS.map(|h| h.chars().count() + 2),
            rows: 1,
            xml: Vec::with_capacity(CHUNK + 4096),
        })
    }

    fn add(&mut self, row: Row) -> AppResult<()> {
        let Some(held) = &mut self.held else {
            return self.write(&row);
        };
        for (c, t) in texts(&row) {
            // An ASCII cell's width is its length.
            let width = if t.is_ascii() { t.len() } else { t.chars().count() };
            self.widths[c] = self.widths[c].max(width + 2);
        }
        self.widths[DATE_COL] = self.widths[DATE_COL].max(18);
        held.push(row);
        if held.len() == WIDTH_SAMPLE { self.start() } else { Ok(()) }
    }

    /// The sheet's head (frozen header row, widths) and the rows held for it.
    fn start(&mut self) -> AppResult<()> {
        let held = self.held.take().unwrap_or_default();
        let x = &mut self.xml;
        x.extend_from_slice(XML.as_bytes());
        let _ = write!(
            x,
            r#"<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>"#
        );
        for (c, w) in self.widths.iter().enumerate() {
            let _ =
                write!(x, r#"<col min="{0}" max="{0}" width="{1}" customWidth="1"/>"#, c + 1, col_width((*w).min(60)));
        }
        x.extend_from_slice(br#"</cols><sheetData><row r="1">"#);
        for (c, h) in HEADERS.iter().enumerate() {
            text_cell(x, c, "1", BOLD, h);
        }
        x.extend_from_slice(b"</row>");
        for row in held {
            self.write(&row)?;
        }
        Ok(())
    }

    fn write(&mut self, row: &Row) -> AppResult<()> {
        if self.rows == MAX_ROWS {
            return Err(io(format!("more than {} connections of one partner in a month", MAX_ROWS - 1)));
        }
        self.rows += 1;
        let r = self.rows.to_string();
        let x = &mut self.xml;
        let _ = write!(x, r#"<row r="{r}">"#);
        for (c, t) in texts(row) {
            if c == DATE_COL + 1 {
                number_cell(x, DATE_COL, &r, DATE, serial(row.live_at));
            }
            text_cell(x, c, &r, 0, t);
        }
        x.extend_from_slice(b"</row>");
        if x.len() >= CHUNK {
            self.zip.write_all(x).map_err(io)?;
            x.clear();
        }
        Ok(())
    }

    /// The sheet's XML completed and compressed, in its temporary file.
    fn finish(mut self) -> AppResult<(File, u32)> {
        if self.held.is_some() {
            self.start()?;
        }
        let _ = write!(self.xml, r#"</sheetData><autoFilter ref="A1:J{}"/>{MARGINS}</worksheet>"#, self.rows.max(2));
        self.zip.write_all(&self.xml).map_err(io)?;
        Ok((self.zip.finish().map_err(io)?, self.rows))
    }
}

/// The text columns of a row, by column index (the date is column 7).
fn texts(row: &Row) -> [(usize, &str); 9] {
    [
        (0, &row.partner),
        (1, &row.merchant),
        (2, &row.point),
        (3, &row.address),
        (4, &row.pos_parent),
        (5, &row.pos_id),
        (6, &row.point_code),
        (8, &row.pyc),
        (9, &row.technician),
    ]
}

/// The month's workbook while its rows arrive: a summary sheet first, then one sheet per
/// partner in code order.
pub(super) struct Book {
    sheets: BTreeMap<String, Sheet>,
    request_ids: Vec<i64>,
}

impl Book {
    pub(super) fn new() -> Book {
        Book { sheets: BTreeMap::new(), request_ids: Vec::new() }
    }

    pub(super) fn add(&mut self, row: Row) -> AppResult<()> {
        self.request_ids.push(row.request_id);
        match self.sheets.get_mut(&row.partner) {
            Some(sheet) => sheet.add(row),
            None => {
                let mut sheet = Sheet::new()?;
                let partner = row.partner.clone();
                sheet.add(row)?;
                self.sheets.insert(partner, sheet);
                Ok(())
            }
        }
    }

    pub(super) fn save<W: Write + Seek>(self, month: Month, out: W) -> AppResult<Listed> {
        let mut zip = ZipWriter::new(out);
        let mut counts = Vec::with_capacity(self.sheets.len());
        let mut names: Vec<String> = vec!["Tổng hợp".into()];
        let mut done = Vec::with_capacity(self.sheets.len());
        for (partner, sheet) in self.sheets {
            let (file, rows) = sheet.finish()?;
            counts.push((partner.clone(), rows as usize - 1));
            names.push(sheet_name(&partner, &names));
            done.push((file, rows));
        }
        let part = |zip: &mut ZipWriter<W>, name: &str, body: &str| -> AppResult<()> {
            zip.start_file(name, options()).map_err(io)?;
            zip.write_all(XML.as_bytes()).map_err(io)?;
            zip.write_all(body.as_bytes()).map_err(io)
        };
        let n = names.len();
        let mut types = String::from(
            r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>"#,
        );
        for i in 1..=n {
            types += &format!(
                r#"<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
            );
        }
        types += "</Types>";
        part(&mut zip, "[Content_Types].xml", &types)?;
        part(
            &mut zip,
            "_rels/.rels",
            &format!(
                r#"<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
            ),
        )?;
        let mut rels = format!(r#"<Relationships xmlns="{PKG_REL_NS}">"#);
        let mut sheets = String::new();
        let mut filters = String::new();
        for (i, name) in names.iter().enumerate() {
            let id = i + 1;
            rels +=
                &format!(r#"<Relationship Id="rId{id}" Type="{REL_NS}/worksheet" Target="worksheets/sheet{id}.xml"/>"#);
            let attr = xml_text(name);
            sheets += &format!(r#"<sheet name="{attr}" sheetId="{id}" r:id="rId{id}"/>"#);
            if i > 0 {
                // The filter's range, as Excel names it; a quote in the name is doubled.
                let rows = done[i - 1].1.max(2);
                let quoted = xml_text(&name.replace('\'', "''"));
                filters += &format!(
                    r#"<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'{quoted}'!$A$1:$J${rows}</definedName>"#
                );
            }
        }
        rels +=
            &format!(r#"<Relationship Id="rId{}" Type="{REL_NS}/styles" Target="styles.xml"/></Relationships>"#, n + 1);
        if !filters.is_empty() {
            filters = format!("<definedNames>{filters}</definedNames>");
        }
        part(
            &mut zip,
            "xl/workbook.xml",
            &format!(
                r#"<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><bookViews><workbookView/></bookViews><sheets>{sheets}</sheets>{filters}</workbook>"#
            ),
        )?;
        part(&mut zip, "xl/_rels/workbook.xml.rels", &rels)?;
        part(&mut zip, "xl/styles.xml", STYLES)?;
        part(&mut zip, "xl/worksheets/sheet1.xml", &summary(month, &counts))?;
        for (i, (file, _)) in done.into_iter().enumerate() {
            let mut sheet = zip::ZipArchive::new(file).map_err(io)?;
            let entry = sheet.by_index_raw(0).map_err(io)?;
            zip.raw_copy_file_rename(entry, format!("xl/worksheets/sheet{}.xml", i + 2)).map_err(io)?;
        }
        zip.finish().map_err(io)?;
        let listed = Listed { counts, request_ids: self.request_ids };
        Ok(listed)
    }
}

fn xml_text(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    escape(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

/// A sheet name Excel accepts for `partner`: without `[]:*?/\`, not starting or ending
/// with a quote, at most 31 characters, and unlike every name before it (Excel compares
/// them without case).
fn sheet_name(partner: &str, taken: &[String]) -> String {
    let clean: String = partner
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) || c.is_control() { '_' } else { c })
        .collect::<String>()
        .trim_matches('\'')
        .to_string();
    let base = if clean.trim().is_empty() { "Đối tác".to_string() } else { clean };
    let free = |n: &str| !taken.iter().any(|t| t.to_lowercase() == n.to_lowercase());
    let first: String = base.chars().take(MAX_NAME).collect();
    if free(&first) {
        return first;
    }
    (2..)
        .map(|k| {
            let tail = format!(" ({k})");
            let head: String = base.chars().take(MAX_NAME - tail.chars().count()).collect();
            head + &tail
        })
        .find(|n| free(n))
        .unwrap_or_default()
}

/// The summary sheet: the title, connections per partner, the total.
fn summary(month: Month, counts: &[(String, usize)]) -> String {
    let mut x = Vec::new();
    let _ = write!(
        x,
        r#"<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheetViews><sheetView tabSelected="1" workbookViewId="0"/></sheetViews><sheetFormatPr defaultRowHeight="15"/><cols><col min="1" max="1" width="{}" customWidth="1"/><col min="2" max="2" width="{}" customWidth="1"/></cols><sheetData>"#,
        col_width(40),
        col_width(18)
    );
    x.extend_from_slice(br#"<row r="1">"#);
    text_cell(&mut x, 0, "1", BOLD, &format!("Điểm kết nối thành công tháng {:02}/{}", month.month, month.year));
    x.extend_from_slice(br#"</row><row r="3">"#);
    text_cell(&mut x, 0, "3", BOLD, "Đối tác");
    text_cell(&mut x, 1, "3", BOLD, "Số điểm kết nối");
    x.extend_from_slice(b"</row>");
    let line = |x: &mut Vec<u8>, r: usize, name: &str, n: usize, style: u8| {
        let r = r.to_string();
        let _ = write!(x, r#"<row r="{r}">"#);
        text_cell(x, 0, &r, style, name);
        number_cell(x, 1, &r, style, n as f64);
        x.extend_from_slice(b"</row>");
    };
    for (i, (partner, n)) in counts.iter().enumerate() {
        line(&mut x, 4 + i, partner, *n, 0);
    }
    line(&mut x, 4 + counts.len(), "Tổng cộng", counts.iter().map(|c| c.1).sum(), BOLD);
    let _ = write!(x, "</sheetData>{MARGINS}</worksheet>");
    String::from_utf8(x).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        escape(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn text_is_escaped_as_excel_reads_it() {
        assert_eq!(escaped("Phở & <Bún> \"Chả\""), "Phở &amp; &lt;Bún&gt; &quot;Chả&quot;");
        // Controls XML cannot carry, and a literal escape, as Excel writes them.
        assert_eq!(escaped("a\u{1}b\rc\td\ne"), "a_x0001_b_x000D_c\td\ne");
        assert_eq!(escaped("mã _x0041_ và _xyz_"), "mã _x005F_x0041_ và _xyz_");
        assert_eq!(escaped("\u{FFFE}"), "_xFFFE_");
    }

    #[test]
    fn sheet_names_are_ones_excel_accepts() {
        let taken = vec!["Tổng hợp".to_string()];
        assert_eq!(sheet_name("MOMO", &taken), "MOMO");
        assert_eq!(sheet_name("a/b:c*[d]?", &taken), "a_b_c__d__");
        assert_eq!(sheet_name("'quoted'", &taken), "quoted");
        assert_eq!(sheet_name("tổng HỢP", &taken), "tổng HỢP (2)");
        let long = "X".repeat(40);
        let first = sheet_name(&long, &taken);
        assert_eq!(first.chars().count(), 31);
        let taken = vec![first];
        assert_eq!(sheet_name(&long, &taken), format!("{} (2)", "X".repeat(27)));
    }

    #[test]
    fn dates_are_excel_serials() {
        // 2 October 2026, 04:00, as rust_xlsxwriter wrote it into the demo's workbook.
        let at = NaiveDate::from_ymd_opt(2026, 10, 2).and_then(|d| d.and_hms_opt(4, 0, 0)).unwrap_or_default();
        assert_eq!(serial(at).to_string(), "46297.166666666664");
        assert_eq!(col_width(9), 9.7109375);
    }
}
