//! The Vietnamese banks of the VietQR list: BIN, code, names, Casso's `codeName`, and
//! whether hubgate links them through an official Open API. The list ships in
//! `banks.csv` (loaded when the table is empty) and `hubgate banks import FILE`
//! refreshes it from our CSV or from VietQR's own JSON (`{"data":[{bin, code,
//! shortName, name}, …]}`).

use diesel::prelude::*;
use serde::Deserialize;

use crate::db::DbConn;
use crate::db::schema::banks;
use crate::error::{AppError, AppResult};

const SHIPPED: &str = include_str!("banks.csv");

#[derive(Queryable, Debug, Clone)]
pub struct Bank {
    pub id: i64,
    pub bin: String,
    pub code: String,
    pub short_name: String,
    pub name: String,
    pub casso_code_name: String,
    pub official_api: bool,
}

/// One row to store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BankRow {
    pub bin: String,
    pub code: String,
    pub short_name: String,
    pub name: String,
    #[serde(default)]
    pub casso_code_name: String,
    #[serde(default, deserialize_with = "flag")]
    pub official_api: bool,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    Ok(matches!(s.trim(), "1" | "true" | "yes"))
}

/// VietQR's JSON shape.
#[derive(Deserialize)]
struct VietQr {
    data: Vec<VietQrBank>,
}

#[derive(Deserialize)]
struct VietQrBank {
    bin: String,
    code: String,
    #[serde(alias = "short_name", rename = "shortName")]
    short_name: String,
    name: String,
}

fn valid(row: &BankRow) -> bool {
    row.bin.len() == 6
        && row.bin.chars().all(|c| c.is_ascii_digit())
        && !row.code.trim().is_empty()
        && !row.short_name.trim().is_empty()
        && !row.name.trim().is_empty()
}

/// Parses our CSV or VietQR's JSON; every row must be valid, or nothing is taken.
pub fn parse(bytes: &[u8]) -> AppResult<Vec<BankRow>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AppError::Validation("Tệp danh sách ngân hàng phải là UTF-8.".into()))?
        .trim_start_matches('\u{feff}');
    let rows: Vec<BankRow> = if text.trim_start().starts_with('{') {
        let parsed: VietQr = serde_json::from_str(text)
            .map_err(|e| AppError::Validation(format!("JSON danh sách ngân hàng không hợp lệ: {e}")))?;
        parsed
            .data
            .into_iter()
            .map(|b| BankRow {
                bin: b.bin,
                code: b.code,
                short_name: b.short_name,
                name: b.name,
                casso_code_name: String::new(),
                official_api: false,
            })
            .collect()
    } else {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for (i, row) in reader.deserialize::<BankRow>().enumerate() {
            rows.push(row.map_err(|e| AppError::Validation(format!("Dòng {}: {e}", i + 2)))?);
        }
        rows
    };
    if let Some(bad) = rows.iter().find(|r| !valid(r)) {
        return Err(AppError::Validation(format!("Dòng không hợp lệ (BIN, mã, tên): {bad:?}")));
    }
    if rows.is_empty() {
        return Err(AppError::Validation("Danh sách ngân hàng trống.".into()));
    }
    Ok(rows)
}

/// Inserts or updates each bank by BIN. A VietQR file carries no Casso code name and
/// no official-API flag: the stored ones are kept. Returns (added, updated).
pub fn upsert(conn: &mut DbConn, rows: &[BankRow], keep_extras: bool) -> AppResult<(usize, usize)> {
    crate::db::tx(conn, |conn| {
        let (mut added, mut updated) = (0, 0);
        for r in rows {
            let existing: Option<Bank> =
                banks::table.filter(banks::bin.eq(&r.bin)).select(banks::all_columns).first(conn).optional()?;
            match existing {
                Some(b) => {
                    let (casso, official) = if keep_extras {
                        (b.casso_code_name.clone(), b.official_api)
                    } else {
                        (r.casso_code_name.clone(), r.official_api)
                    };
                    diesel::update(banks::table.find(b.id))
                        .set((
                            banks::code.eq(&r.code),
                            banks::short_name.eq(&r.short_name),
                            banks::name.eq(&r.name),
                            banks::casso_code_name.eq(casso),
                            banks::official_api.eq(official),
                        ))
                        .execute(conn)?;
                    updated += 1;
                }
                None => {
                    diesel::insert_into(banks::table)
                        .values((
                            banks::bin.eq(&r.bin),
                            banks::code.eq(&r.code),
                            banks::short_name.eq(&r.short_name),
                            banks::name.eq(&r.name),
                            banks::casso_code_name.eq(&r.casso_code_name),
                            banks::official_api.eq(r.official_api),
                        ))
                        .execute(conn)?;
                    added += 1;
                }
            }
        }
        Ok((added, updated))
    })
}

/// Imports a file given to `hubgate banks import`.
pub fn import(conn: &mut DbConn, bytes: &[u8]) -> AppResult<(usize, usize)> {
    let is_vietqr = bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{');
    let rows = parse(bytes)?;
    upsert(conn, &rows, is_vietqr)
}

/// Loads the shipped list into an empty table (every start; a no-op afterwards).
pub fn ensure_loaded(conn: &mut DbConn) -> AppResult<()> {
    let n: i64 = banks::table.count().get_result(conn)?;
    if n == 0 {
        upsert(conn, &parse(SHIPPED.as_bytes())?, false)?;
    }
    Ok(())
}

pub fn all(conn: &mut DbConn) -> QueryResult<Vec<Bank>> {
    banks::table.order(banks::short_name.asc()).select(banks::all_columns).load(conn)
}

pub fn by_bin(conn: &mut DbConn, bin: &str) -> QueryResult<Option<Bank>> {
    banks::table.filter(banks::bin.eq(bin)).select(banks::all_columns).first(conn).optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_is_valid_and_knows_cassos_names() {
        let rows = parse(SHIPPED.as_bytes()).unwrap_or_default();
        assert!(rows.len() >= 50, "{}", rows.len());
        let acb = rows.iter().find(|r| r.bin == "970416");
        assert_eq!(acb.map(|r| r.casso_code_name.as_str()), Some("acb_digi"));
        let timo = rows.iter().find(|r| r.bin == "970454");
        assert_eq!(timo.map(|r| r.casso_code_name.as_str()), Some("timoplus"));
        assert!(rows.iter().any(|r| r.bin == "970448" && r.official_api), "OCB links by Open API");
        let mut bins: Vec<_> = rows.iter().map(|r| &r.bin).collect();
        bins.sort();
        bins.dedup();
        assert_eq!(bins.len(), rows.len(), "BINs are unique");
    }

    #[test]
    fn vietqr_json_and_bad_files() {
        let json = r#"{"code":"00","data":[{"id":17,"bin":"970415","code":"ICB","shortName":"VietinBank","name":"Ngân hàng TMCP Công thương Việt Nam","logo":"x"}]}"#;
        let rows = parse(json.as_bytes()).unwrap_or_default();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].short_name, "VietinBank");
        assert!(parse(b"bin,code,short_name,name\n97041,X,Y,Z\n").is_err(), "a 5-digit BIN");
        assert!(parse(b"{\"data\": []}").is_err());
        assert!(parse(&[0xff, 0xfe, 0x00]).is_err());
    }
}
