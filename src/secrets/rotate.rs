//! `hubgate rotate-key`: re-seals every value of every sealed column under the current
//! key, batch by batch, each batch in its own transaction with its audit row.
//!
//! Idempotent: values already under the current key are left alone, so a run that
//! stopped half-way is finished by running it again. A row changed by the app while a
//! batch runs is not overwritten (the update matches the value it read).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{Column, Keyring, SEALED_COLUMNS, SecretError};
use crate::audit::{self, Actor};
use crate::db::DbConn;

pub const BATCH: usize = 500;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    value: String,
}

/// What a run did to one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnCount {
    pub table: &'static str,
    pub column: &'static str,
    pub resealed: usize,
    /// Already under the current key in the current format.
    pub current: usize,
    /// Changed by the app between reading and writing (sealed afresh by it).
    pub changed: usize,
    pub unreadable: usize,
}

/// A value that opens under no configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub table: &'static str,
    pub column: &'static str,
    pub row: i64,
    pub error: SecretError,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} row {}: {}", self.table, self.column, self.row, self.error)
    }
}

#[derive(Debug)]
pub struct Report {
    pub key_id: String,
    pub columns: Vec<ColumnCount>,
    pub skipped: Vec<Unreadable>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{} sealed value(s) open under no configured key; nothing was changed", .0.len())]
    Unreadable(Vec<Unreadable>),
    #[error("{0}")]
    Seal(SecretError),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

// Table and column names come from the registry (constants), never from input.
fn batch_after(conn: &mut DbConn, col: &Column, after: i64, limit: usize) -> QueryResult<Vec<Row>> {
    let (t, c, id) = (col.table, col.column, col.id_column);
    let sql = format!(
        "SELECT {id} AS id, {c} AS value FROM {t} WHERE {c} IS NOT NULL AND {c} <> '' AND {id} > {after} ORDER BY {id} LIMIT {limit}"
    );
    crate::with_conn!(conn, |c| diesel::sql_query(&sql).load::<Row>(c))
}

/// Replaces the value only if it is still the one read.
fn replace(conn: &mut DbConn, col: &Column, row: i64, old: &str, new: &str) -> QueryResult<usize> {
    let (t, c, id) = (col.table, col.column, col.id_column);
    match conn {
        DbConn::Pg(pg) => diesel::sql_query(format!("UPDATE {t} SET {c} = $1 WHERE {id} = $2 AND {c} = $3"))
            .bind::<Text, _>(new)
            .bind::<BigInt, _>(row)
            .bind::<Text, _>(old)
            .execute(pg),
        DbConn::Sqlite(lite) => diesel::sql_query(format!("UPDATE {t} SET {c} = ? WHERE {id} = ? AND {c} = ?"))
            .bind::<Text, _>(new)
            .bind::<BigInt, _>(row)
            .bind::<Text, _>(old)
            .execute(lite),
    }
}

/// Every stored value that opens under no configured key.
pub fn unreadable(conn: &mut DbConn, keys: &Keyring, batch: usize) -> QueryResult<Vec<Unreadable>> {
    let mut out = Vec::new();
    for col in SEALED_COLUMNS {
        let mut last = i64::MIN;
        loop {
            let rows = batch_after(conn, col, last, batch)?;
            let Some(end) = rows.last().map(|r| r.id) else { break };
            for r in rows {
                if let Err(error) = keys.open(col, r.id, &r.value) {
                    out.push(Unreadable { table: col.table, column: col.column, row: r.id, error });
                }
            }
            last = end;
        }
    }
    Ok(out)
}

/// Re-seals everything under the current key. Refuses (changing nothing) when some
/// value opens under no configured key, unless `skip_unreadable`: those are then left
/// as they are and listed.
pub fn rotate(
    conn: &mut DbConn,
    keys: &Keyring,
    actor: &Actor,
    skip_unreadable: bool,
    batch: usize,
) -> Result<Report, RotateError> {
    if !skip_unreadable {
        let bad = unreadable(conn, keys, batch)?;
        if !bad.is_empty() {
            return Err(RotateError::Unreadable(bad));
        }
    }
    let key_id = keys.current_id();
    let mut report = Report { key_id: key_id.clone(), columns: Vec::new(), skipped: Vec::new() };
    for col in SEALED_COLUMNS {
        let mut count = ColumnCount { table: col.table, column: col.column, ..Default::default() };
        let mut last = i64::MIN;
        loop {
            let done = crate::db::tx(conn, |conn| -> Result<Option<i64>, RotateError> {
                let rows = batch_after(conn, col, last, batch)?;
                let Some(end) = rows.last().map(|r| r.id) else { return Ok(None) };
                let (mut resealed, mut skipped) = (Vec::new(), Vec::new());
                for r in rows {
                    let clear = match keys.open(col, r.id, &r.value) {
                        Ok(c) => c,
                        Err(error) => {
                            // Checked above unless skipping; a value damaged since is skipped too.
                            count.unreadable += 1;
                            skipped.push(r.id);
                            report.skipped.push(Unreadable { table: col.table, column: col.column, row: r.id, error });
                            continue;
                        }
                    };
                    if keys.is_current(&r.value) {
                        count.current += 1;
                        continue;
                    }
                    let sealed = keys.seal(col, r.id, &clear).map_err(RotateError::Seal)?;
                    if replace(conn, col, r.id, &r.value, &sealed)? == 1 {
                        count.resealed += 1;
                        resealed.push(r.id);
                    } else {
                        count.changed += 1;
                    }
                }
                if !resealed.is_empty() || !skipped.is_empty() {
                    audit::record(
                        conn,
                        actor,
                        "sealed_column",
                        format!("{}.{}", col.table, col.column),
                        "rotate_key",
                        None,
                        Some(serde_json::json!({ "key_id": key_id, "resealed": resealed, "unreadable": skipped })),
                    )?;
                }
                Ok(Some(end))
            })?;
            match done {
                Some(end) => last = end,
                None => break,
            }
        }
        report.columns.push(count);
    }
    Ok(report)
}
