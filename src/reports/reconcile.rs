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

pub use crate::sheets::{MAX_COLS, Sheet, read};

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

fn normalise_key(s: &str) -> String {
    // "POS-0012" and "pos-12": compare the prefix and the number without its zeros.
    let n = normalise_code(s);
    match n.rfind(|c: char| !c.is_ascii_digit()) {
        Some(i) if i + 1 < n.len() => {
            let (prefix, digits) = n.split_at(i + 1);
            let digits = digits.trim_start_matches('0');
            format!("{prefix}{}", if digits.is_empty() { "0" } else { digits })
        }
        _ => n,
    }
}

/// One line of their statement, as mapped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TheirRow {
    pub line: usize,
    pub key: String,
    pub merchant: String,
    pub date: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OurRow {
    pub key: String,
    pub partner: String,
    pub merchant: String,
    pub point: String,
    pub pos_id: String,
    pub point_code: String,
    pub date: String,
    pub pyc: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub matched: Vec<(OurRow, TheirRow)>,
    pub only_ours: Vec<OurRow>,
    pub only_theirs: Vec<TheirRow>,
    pub differing: Vec<(OurRow, TheirRow, String)>,
}

fn their_rows(sheets: &[Sheet], m: &Mapping) -> Result<Vec<TheirRow>, String> {
    let sheet =
        sheets.iter().find(|s| s.name == m.sheet).ok_or_else(|| format!("Không có trang “{}” trong tệp.", m.sheet))?;
    let key_col = m.pos_id.or(m.point_code).ok_or("Chọn cột POS ID hoặc cột mã điểm.")?;
    let width = sheet.rows.iter().map(Vec::len).max().unwrap_or(0);
    for (col, what) in [(Some(key_col), "mã"), (m.merchant, "merchant"), (m.date, "ngày")] {
        if let Some(c) = col
            && c >= width
        {
            return Err(format!("Cột {what} đã chọn không có trong trang “{}”.", m.sheet));
        }
    }
    let cell = |r: &Vec<String>, c: Option<usize>| c.and_then(|c| r.get(c)).cloned().unwrap_or_default();
    Ok(sheet
        .rows
        .iter()
        .enumerate()
        .skip(m.header_row + 1)
        .filter(|(_, r)| !cell(r, Some(key_col)).is_empty())
        .map(|(i, r)| TheirRow {
            line: i + 1,
            key: normalise_key(&cell(r, Some(key_col))),
            merchant: cell(r, m.merchant),
            date: cell(r, m.date),
        })
        .collect())
}

fn ours(rows: &[Row], by_pos_id: bool) -> Vec<OurRow> {
    rows.iter()
        .map(|r| OurRow {
            key: normalise_key(if by_pos_id { &r.pos_id } else { &r.point_code }),
            partner: r.partner.clone(),
            merchant: r.merchant.clone(),
            point: r.point.clone(),
            pos_id: r.pos_id.clone(),
            point_code: r.point_code.clone(),
            date: r.live_at.format("%Y-%m-%d").to_string(),
            pyc: r.pyc.clone(),
        })
        .collect()
}

/// Matches our connections of the month against their statement.
pub fn reconcile(our_rows: &[Row], sheets: &[Sheet], m: &Mapping) -> Result<Outcome, String> {
    let theirs = their_rows(sheets, m)?;
    let mut ours = ours(our_rows, m.pos_id.is_some());
    let mut out = Outcome::default();
    let mut remaining: std::collections::HashMap<String, Vec<TheirRow>> = std::collections::HashMap::new();
    for t in theirs {
        remaining.entry(t.key.clone()).or_default().push(t);
    }
    for o in ours.drain(..) {
        match remaining.get_mut(&o.key).and_then(|v| if v.is_empty() { None } else { Some(v.remove(0)) }) {
            Some(t) => {
                let mut reasons = Vec::new();
                if m.merchant.is_some() && !t.merchant.is_empty() && fold(&t.merchant) != fold(&o.merchant) {
                    reasons.push(format!("merchant “{}” ≠ “{}”", t.merchant, o.merchant));
                }
                if m.date.is_some()
                    && !t.date.is_empty()
                    && !t.date.starts_with(&o.date)
                    && normalise_date(&t.date) != o.date
                {
                    reasons.push(format!("ngày {} ≠ {}", t.date, o.date));
                }
                if reasons.is_empty() {
                    out.matched.push((o, t))
                } else {
                    out.differing.push((o, t, reasons.join("; ")))
                }
            }
            None => out.only_ours.push(o),
        }
    }
    let mut rest: Vec<TheirRow> = remaining.into_values().flatten().collect();
    rest.sort_by_key(|t| t.line);
    out.only_theirs = rest;
    Ok(out)
}

/// dd/mm/yyyy (the way Vietnamese statements write it) → yyyy-mm-dd.
fn normalise_date(s: &str) -> String {
    chrono::NaiveDate::parse_from_str(s.trim(), "%d/%m/%Y")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = reconciliations)]
pub struct Reconciliation {
    pub id: i64,
    pub partner_id: i64,
    pub month: String,
    pub file_name: String,
    pub mapping: Option<String>,
    pub result: Option<String>,
    pub matched: i64,
    pub only_ours: i64,
    pub only_theirs: i64,
    pub differing: i64,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
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
    read(bytes, file_name).map_err(AppError::Validation)?;
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
    let sheets = read(&bytes, &name).map_err(AppError::Validation)?;
    let month = super::Month::parse(&r.month).ok_or(AppError::NotFound)?;
    let mut rows: Vec<Row> = Vec::new();
    super::each_month_row(conn, month, Some(r.partner_id), &mut |row| {
        rows.push(row);
        Ok(())
    })?;
    let outcome = reconcile(&rows, &sheets, mapping).map_err(AppError::Validation)?;
    let mapping_json = serde_json::to_string(mapping).map_err(AppError::internal)?;
    let result_json = serde_json::to_string(&outcome).map_err(AppError::internal)?;
    crate::db::tx(conn, |conn| -> AppResult<()> {
        let t = crate::db::now();
        diesel::update(reconciliations::table.find(id))
            .set((
                reconciliations::mapping.eq(Some(&mapping_json)),
                reconciliations::result.eq(Some(&result_json)),
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

/// The outcome as a workbook: one sheet per outcome.
pub fn outcome_workbook(o: &Outcome) -> AppResult<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let x = |e: rust_xlsxwriter::XlsxError| AppError::internal(anyhow::anyhow!("xlsx: {e}"));
    let mut book = Workbook::new();
    let bold = Format::new().set_bold().set_background_color("DDEBF7");
    let ours_head = ["Merchant", "Điểm", "POS ID", "Mã điểm", "Ngày kết nối", "Số PYC"];
    let mut sheet_of = |name: &str, head: &[&str], rows: Vec<Vec<String>>| -> AppResult<()> {
        let s = book.add_worksheet().set_name(name).map_err(x)?;
        for (c, h) in head.iter().enumerate() {
            s.write_string_with_format(0, c as u16, *h, &bold).map_err(x)?;
            s.set_column_width(c as u16, 22).map_err(x)?;
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                s.write_string(r as u32 + 1, c as u16, v).map_err(x)?;
            }
        }
        s.set_freeze_panes(1, 0).map_err(x)?;
        Ok(())
    };
    let our = |o: &OurRow| {
        vec![o.merchant.clone(), o.point.clone(), o.pos_id.clone(), o.point_code.clone(), o.date.clone(), o.pyc.clone()]
    };
    sheet_of("Khớp", &ours_head, o.matched.iter().map(|(a, _)| our(a)).collect())?;
    sheet_of("Chỉ có bên mình", &ours_head, o.only_ours.iter().map(our).collect())?;
    sheet_of(
        "Chỉ có bên đối tác",
        &["Dòng", "Mã", "Merchant", "Ngày"],
        o.only_theirs
            .iter()
            .map(|t| vec![t.line.to_string(), t.key.clone(), t.merchant.clone(), t.date.clone()])
            .collect(),
    )?;
    let mut diff_head = ours_head.to_vec();
    diff_head.push("Khác nhau");
    sheet_of(
        "Lệch thông tin",
        &diff_head,
        o.differing
            .iter()
            .map(|(a, _, why)| {
                let mut r = our(a);
                r.push(why.clone());
                r
            })
            .collect(),
    )?;
    book.save_to_buffer().map_err(x)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

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

    #[test]
    fn codes_compare_without_case_spaces_and_zeros() {
        assert_eq!(normalise_key("pos-0012 "), normalise_key("POS-12"));
        assert_eq!(normalise_key("000123"), normalise_key("123"));
        assert_ne!(normalise_key("POS-12"), normalise_key("POS-120"));
        // A code that ends in a letter is kept whole: no "0" is made up after it.
        assert_eq!(normalise_key("pos-a"), "POS-A");
        assert_ne!(normalise_key("POS-A"), normalise_key("POS-A0"));
    }
}
