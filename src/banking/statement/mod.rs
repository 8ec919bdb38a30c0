//! Bank statement import: the file a merchant downloads from internet banking, kept as
//! uploaded, previewed with the detected (or remembered) column mapping, then imported
//! from the kept file through the same store as synced transactions
//! ([`super::sync::apply_rows`]: de-duplicated by id, notifications born with the rows
//! unless the history is imported silently). The confirmed mapping is remembered per
//! bank and header layout, so the next file of that layout imports in one step.

pub mod handlers;
pub mod parse;

use chrono::{NaiveDateTime, TimeZone};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

pub use parse::{Field, Layout, Mapping, Skipped, StRow, Statement};

use super::connectors::IncomingTx;
use crate::audit::{self, Actor};
use crate::business::models::BankAccount;
use crate::db::DbConn;
use crate::db::schema::{statement_imports, statement_layouts};
use crate::error::{AppError, AppResult};

/// Transactions shown on the preview page.
pub const PREVIEW_ROWS: usize = 15;
/// Transactions stored per write (each a transaction of its own within the import's).
const CHUNK: usize = 2_000;
pub const SOURCE: &str = "statement";

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = statement_imports)]
pub struct Import {
    pub id: i64,
    pub business_id: i64,
    pub account_id: i64,
    pub file_name: String,
    pub status: String,
    pub silent: bool,
    pub mapping: Option<String>,
    pub new_count: i64,
    pub known_count: i64,
    pub skipped: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
    pub imported_at: Option<NaiveDateTime>,
}

impl Import {
    pub fn skipped_rows(&self) -> Vec<Skipped> {
        self.skipped.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
    }

    pub fn done(&self) -> bool {
        self.status == "imported"
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub import_id: i64,
    pub new: usize,
    pub known: usize,
    pub skipped: Vec<Skipped>,
}

/// The statement's account number against the account's: a file of another account is
/// refused with both numbers.
pub fn check_account(st: &Statement, account: &BankAccount) -> Result<(), String> {
    match &st.account_number {
        Some(n) if !parse::same_account(n, &account.account_number) => Err(format!(
            "Sao kê này của tài khoản {n}, không phải tài khoản {} ({}); không nhập gì.",
            account.account_number, account.bank_name
        )),
        _ => Ok(()),
    }
}

/// Reads a statement, refusing what cannot be imported: rows that do not parse (named),
/// another account's file, a mapping without date or money.
pub fn read_checked(
    bytes: &[u8],
    file_name: &str,
    mapping: Option<&Mapping>,
    account: &BankAccount,
    keep: usize,
) -> Result<Statement, String> {
    let st = parse::read(bytes, file_name, mapping, keep)?;
    st.mapping.check()?;
    if let Some(m) = st.fault_message() {
        return Err(m);
    }
    check_account(&st, account)?;
    Ok(st)
}

/// The mapping confirmed earlier for this bank and header layout.
pub fn saved_mapping(conn: &mut DbConn, bank_code: &str, layout: &Layout) -> QueryResult<Option<Mapping>> {
    let m: Option<String> = statement_layouts::table
        .find((bank_code, layout.signature()))
        .select(statement_layouts::mapping)
        .first(conn)
        .optional()?;
    Ok(m.and_then(|s| serde_json::from_str(&s).ok()))
}

fn remember(conn: &mut DbConn, bank_code: &str, layout: &Layout, m: &Mapping) -> AppResult<()> {
    let json = serde_json::to_string(m).map_err(AppError::internal)?;
    let t = crate::db::now();
    crate::with_conn!(conn, |c| diesel::insert_into(statement_layouts::table)
        .values((
            statement_layouts::bank_code.eq(bank_code),
            statement_layouts::signature.eq(layout.signature()),
            statement_layouts::mapping.eq(&json),
            statement_layouts::updated_at.eq(t),
        ))
        .on_conflict((statement_layouts::bank_code, statement_layouts::signature))
        .do_update()
        .set((statement_layouts::mapping.eq(&json), statement_layouts::updated_at.eq(t)))
        .execute(c))?;
    Ok(())
}

/// Keeps an uploaded statement (it must be one: a header row found).
pub fn upload(
    conn: &mut DbConn,
    actor: &Actor,
    account: &BankAccount,
    file_name: &str,
    bytes: &[u8],
    silent: bool,
) -> AppResult<i64> {
    parse::read(bytes, file_name, None, 0).map_err(AppError::Validation)?;
    crate::db::tx(conn, |conn| {
        let id: i64 = diesel::insert_into(statement_imports::table)
            .values((
                statement_imports::business_id.eq(account.business_id),
                statement_imports::account_id.eq(account.id),
                statement_imports::file_name.eq(file_name.chars().take(255).collect::<String>()),
                statement_imports::file.eq(bytes),
                statement_imports::status.eq("uploaded"),
                statement_imports::silent.eq(silent),
                statement_imports::created_by.eq(actor.user_id),
                statement_imports::created_at.eq(crate::db::now()),
            ))
            .returning(statement_imports::id)
            .get_result(conn)?;
        audit::record(
            conn,
            actor,
            "statement_import",
            id,
            "upload",
            None,
            Some(serde_json::json!({"account_id": account.id, "file": file_name, "bytes": bytes.len()})),
        )?;
        Ok(id)
    })
}

pub fn get(conn: &mut DbConn, business_id: i64, id: i64) -> AppResult<Import> {
    statement_imports::table
        .filter(statement_imports::business_id.eq(business_id))
        .filter(statement_imports::id.eq(id))
        .select(Import::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn file(conn: &mut DbConn, id: i64) -> QueryResult<Vec<u8>> {
    statement_imports::table.find(id).select(statement_imports::file).first(conn)
}

/// The statement's transactions as the sync engine takes them (times to UTC).
fn incoming(rows: &[StRow]) -> Vec<IncomingTx> {
    rows.iter()
        .map(|r| IncomingTx {
            bank_tx_id: r.bank_tx_id.clone(),
            amount: r.amount,
            description: r.description.clone(),
            balance: r.balance,
            occurred_at: local_to_utc(r.at),
            pending: false,
            counter_account: r.counter_account.clone(),
            counter_name: r.counter_name.clone(),
            counter_bank_id: String::new(),
            counter_bank_name: String::new(),
            virtual_account: String::new(),
            virtual_account_name: String::new(),
            payment_channel: String::new(),
            replaces: None,
        })
        .collect()
}

fn local_to_utc(t: NaiveDateTime) -> NaiveDateTime {
    crate::fmt::TZ.from_local_datetime(&t).earliest().map(|x| x.naive_utc()).unwrap_or(t)
}

/// Imports a kept statement with `mapping` (else the remembered one, else the detected
/// one). Nothing is stored unless every row reads; the mapping is remembered for the
/// bank and layout. A statement already imported answers its summary again.
pub fn import(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    id: i64,
    mapping: Option<&Mapping>,
    silent: bool,
) -> AppResult<Summary> {
    let imp = get(conn, business_id, id)?;
    if imp.done() {
        return Ok(Summary {
            import_id: id,
            new: imp.new_count as usize,
            known: imp.known_count as usize,
            skipped: imp.skipped_rows(),
        });
    }
    let account = super::models::account(conn, imp.account_id)?;
    let bytes = file(conn, id)?;
    let mut st = read_checked(&bytes, &imp.file_name, mapping, &account, usize::MAX).map_err(AppError::Validation)?;
    if mapping.is_none()
        && let Some(saved) = saved_mapping(conn, &account.bank_code, &st.layout)?
        && saved != st.mapping
    {
        st = read_checked(&bytes, &imp.file_name, Some(&saved), &account, usize::MAX).map_err(AppError::Validation)?;
    }
    drop(bytes);
    let mapping = st.mapping.clone();
    let mapping_json = serde_json::to_string(&mapping).map_err(AppError::internal)?;
    let skipped_json = serde_json::to_string(&st.skipped).map_err(AppError::internal)?;
    crate::db::tx(conn, |conn| {
        let (mut new, mut known) = (0, 0);
        // Converted a chunk at a time: the statement's rows are not held twice.
        for chunk in st.rows.chunks(CHUNK) {
            let applied = super::sync::apply_rows(conn, &account, &incoming(chunk), SOURCE, !silent)?;
            new += applied.new_ids.len();
            known += applied.known;
        }
        remember(conn, &account.bank_code, &st.layout, &mapping)?;
        diesel::update(statement_imports::table.find(id))
            .set((
                statement_imports::status.eq("imported"),
                statement_imports::silent.eq(silent),
                statement_imports::mapping.eq(Some(&mapping_json)),
                statement_imports::new_count.eq(new as i64),
                statement_imports::known_count.eq(known as i64),
                statement_imports::skipped.eq(Some(&skipped_json)),
                statement_imports::imported_at.eq(Some(crate::db::now())),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            actor,
            "statement_import",
            id,
            "import",
            None,
            Some(serde_json::json!({
                "account_id": account.id, "new": new, "known": known,
                "skipped": st.skipped.len(), "silent": silent,
            })),
        )?;
        Ok(Summary { import_id: id, new, known, skipped: st.skipped.clone() })
    })
}

/// The imports of an account, newest first.
pub fn recent(conn: &mut DbConn, account_id: i64) -> QueryResult<Vec<Import>> {
    statement_imports::table
        .filter(statement_imports::account_id.eq(account_id))
        .order(statement_imports::id.desc())
        .limit(20)
        .select(Import::as_select())
        .load(conn)
}
