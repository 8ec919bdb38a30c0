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
use crate::worker::JobOptions;
use crate::worker::runner::JobCtx;

/// Transactions shown on the preview page.
pub const PREVIEW_ROWS: usize = 15;
/// Transactions stored per write (each a transaction of its own within the import's).
const CHUNK: usize = 2_000;
pub const SOURCE: &str = "statement";
pub const IMPORT_JOB: &str = "bank.statement_import";

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
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub imported_at: Option<NaiveDateTime>,
    pub total_rows: i64,
    pub done_rows: i64,
    pub error: Option<String>,
}

/// An import's life: uploaded (previewed) → queued (confirmed) → importing → imported;
/// failed when the worker could not store it (it can be confirmed again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Uploaded,
    Queued,
    Importing,
    Imported,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Uploaded => "uploaded",
            Status::Queued => "queued",
            Status::Importing => "importing",
            Status::Imported => "imported",
            Status::Failed => "failed",
        }
    }
}

impl Import {
    pub fn skipped_rows(&self) -> Vec<Skipped> {
        self.skipped.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
    }

    pub fn done(&self) -> bool {
        self.status == Status::Imported.as_str()
    }

    /// Confirmed and not yet stored: the worker has it.
    pub fn running(&self) -> bool {
        self.status == Status::Queued.as_str() || self.status == Status::Importing.as_str()
    }

    fn can_start(&self) -> bool {
        self.status == Status::Uploaded.as_str() || self.status == Status::Failed.as_str()
    }

    pub fn status_label(&self) -> String {
        match self.status.as_str() {
            "imported" => "đã nhập".into(),
            "queued" => "chờ nhập".into(),
            "importing" => format!("đang nhập ({}%)", self.percent()),
            "failed" => "nhập không xong".into(),
            _ => "chờ xác nhận".into(),
        }
    }

    /// Stored share in whole percent, for the progress bar's label.
    pub fn percent(&self) -> i64 {
        (self.done_rows * 100).checked_div(self.total_rows).unwrap_or(0).clamp(0, 100)
    }

    pub fn summary(&self) -> Summary {
        Summary {
            import_id: self.id,
            new: self.new_count as usize,
            known: self.known_count as usize,
            skipped: self.skipped_rows(),
        }
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
                statement_imports::status.eq(Status::Uploaded.as_str()),
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

/// The statement as it will be imported: read with `mapping`, else the layout's
/// remembered one, else the detected one; refused when a row does not read.
fn resolve(conn: &mut DbConn, imp: &Import, account: &BankAccount, mapping: Option<&Mapping>) -> AppResult<Statement> {
    let bytes = file(conn, imp.id)?;
    let st = read_checked(&bytes, &imp.file_name, mapping, account, usize::MAX).map_err(AppError::Validation)?;
    if mapping.is_none()
        && let Some(saved) = saved_mapping(conn, &account.bank_code, &st.layout)?
        && saved != st.mapping
    {
        return read_checked(&bytes, &imp.file_name, Some(&saved), account, usize::MAX).map_err(AppError::Validation);
    }
    Ok(st)
}

/// Marks a confirmed import as queued with its mapping and row count (from "uploaded"
/// or "failed" only: confirming twice queues once) and, for the web, enqueues the job.
/// Returns the statement when this call queued it.
fn start(
    conn: &mut DbConn,
    actor: &Actor,
    imp: &Import,
    mapping: Option<&Mapping>,
    silent: bool,
    job: bool,
) -> AppResult<Option<(BankAccount, Statement)>> {
    if !imp.can_start() {
        return Ok(None);
    }
    let account = super::models::account(conn, imp.account_id)?;
    let st = resolve(conn, imp, &account, mapping)?;
    let mapping_json = serde_json::to_string(&st.mapping).map_err(AppError::internal)?;
    let skipped_json = serde_json::to_string(&st.skipped).map_err(AppError::internal)?;
    crate::db::tx(conn, |conn| {
        let queued = diesel::update(
            statement_imports::table
                .find(imp.id)
                .filter(statement_imports::status.eq_any([Status::Uploaded.as_str(), Status::Failed.as_str()])),
        )
        .set((
            statement_imports::status.eq(Status::Queued.as_str()),
            statement_imports::silent.eq(silent),
            statement_imports::mapping.eq(Some(&mapping_json)),
            statement_imports::total_rows.eq(st.rows.len() as i64),
            statement_imports::done_rows.eq(0),
            statement_imports::new_count.eq(0),
            statement_imports::known_count.eq(0),
            statement_imports::skipped.eq(Some(&skipped_json)),
            statement_imports::error.eq(None::<String>),
        ))
        .execute(conn)?;
        if queued == 0 {
            return Ok(None);
        }
        if job {
            let payload = serde_json::json!({ "import_id": imp.id });
            crate::worker::enqueue(conn, IMPORT_JOB, &payload, &JobOptions { max_attempts: 5, ..Default::default() })?;
        }
        audit::record(
            conn,
            actor,
            "statement_import",
            imp.id,
            "queue",
            Some(serde_json::json!({ "status": imp.status })),
            Some(serde_json::json!({"account_id": account.id, "rows": st.rows.len(), "silent": silent})),
        )?;
        Ok(Some((account, st)))
    })
}

/// Stores `rows` (those from `offset` on) and moves the progress past them, in one
/// transaction. False when the import is not at `offset`: another run is ahead.
fn step(
    conn: &mut DbConn,
    id: i64,
    account: &BankAccount,
    rows: &[StRow],
    offset: usize,
    notify: bool,
) -> AppResult<Claim> {
    use statement_imports::dsl as si;
    crate::db::tx(conn, |conn| {
        // The conditional update is also the lock that keeps two runs from storing twice.
        let claimed = diesel::update(
            si::statement_imports
                .find(id)
                .filter(si::done_rows.eq(offset as i64))
                .filter(si::status.eq_any([Status::Queued.as_str(), Status::Importing.as_str()])),
        )
        .set((si::status.eq(Status::Importing.as_str()), si::done_rows.eq((offset + rows.len()) as i64)))
        .execute(conn)?;
        if claimed == 0 {
            // Another run stored this chunk (or the import ended): go on from where the
            // progress now stands, if anything is left. Quitting here would strand the
            // import when that run was one already stopped, its last step committing late.
            let (status, done): (String, i64) =
                si::statement_imports.find(id).select((si::status, si::done_rows)).first(conn)?;
            let running = [Status::Queued.as_str(), Status::Importing.as_str()].contains(&status.as_str());
            return Ok(if running && done as usize > offset { Claim::Moved(done as usize) } else { Claim::Ended });
        }
        let applied = super::sync::apply_rows(conn, account, &incoming(rows), SOURCE, notify)?;
        diesel::update(si::statement_imports.find(id))
            .set((
                si::new_count.eq(si::new_count + applied.new_ids.len() as i64),
                si::known_count.eq(si::known_count + applied.known as i64),
            ))
            .execute(conn)?;
        Ok(Claim::Stored)
    })
}

/// What became of a chunk a run tried to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Stored,
    /// Another run got there first; the progress stands at this row.
    Moved(usize),
    /// The import is no longer running.
    Ended,
}

/// Marks every row stored and remembers the mapping for the bank and layout.
fn finish(conn: &mut DbConn, actor: &Actor, id: i64, account: &BankAccount, st: &Statement) -> AppResult<Summary> {
    crate::db::tx(conn, |conn| {
        let ended = diesel::update(
            statement_imports::table
                .find(id)
                .filter(statement_imports::status.eq_any([Status::Queued.as_str(), Status::Importing.as_str()])),
        )
        .set((
            statement_imports::status.eq(Status::Imported.as_str()),
            statement_imports::imported_at.eq(Some(crate::db::now())),
        ))
        .execute(conn)?;
        let imp = get(conn, account.business_id, id)?;
        if ended == 0 {
            // Two runs reached the end together: the other one recorded it.
            return Ok(imp.summary());
        }
        remember(conn, &account.bank_code, &st.layout, &st.mapping)?;
        audit::record(
            conn,
            actor,
            "statement_import",
            id,
            "import",
            Some(serde_json::json!({ "status": Status::Importing.as_str() })),
            Some(serde_json::json!({
                "account_id": account.id, "new": imp.new_count, "known": imp.known_count,
                "skipped": st.skipped.len(), "silent": imp.silent,
            })),
        )?;
        Ok(imp.summary())
    })
}

/// Confirms an import from the web: the file must read with `mapping` (else the
/// remembered or detected one); the worker then stores it a chunk at a time while the
/// page shows the progress.
pub fn queue(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    id: i64,
    mapping: Option<&Mapping>,
    silent: bool,
) -> AppResult<Import> {
    let imp = get(conn, business_id, id)?;
    start(conn, actor, &imp, mapping, silent, true)?;
    get(conn, business_id, id)
}

/// Imports a kept statement at once, in one transaction (the command line, the bench):
/// a file that cannot be imported stores nothing. One already imported answers its
/// summary again.
pub fn import(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    id: i64,
    mapping: Option<&Mapping>,
    silent: bool,
) -> AppResult<Summary> {
    crate::db::tx(conn, |conn| {
        let imp = get(conn, business_id, id)?;
        let Some((account, st)) = start(conn, actor, &imp, mapping, silent, false)? else {
            return Ok(imp.summary());
        };
        for (i, chunk) in st.rows.chunks(CHUNK).enumerate() {
            step(conn, id, &account, chunk, i * CHUNK, !silent)?;
        }
        finish(conn, actor, id, &account, &st)
    })
}

/// The `bank.statement_import` job: reads the queued file once, then stores it a chunk
/// per transaction from where the last run stopped. A file that no longer reads (the
/// remembered mapping changed under it) fails with the reason shown on its page.
pub async fn import_job(ctx: JobCtx) -> Result<(), String> {
    let id = ctx.payload["import_id"].as_i64().ok_or("payload without import_id")?;
    let prepared = ctx
        .db(move |conn| {
            let Some(imp) = statement_imports::table
                .find(id)
                .select(Import::as_select())
                .first(conn)
                .optional()?
                .filter(Import::running)
            else {
                return Ok(None);
            };
            let account = super::models::account(conn, imp.account_id)?;
            let mapping: Option<Mapping> = imp.mapping.as_deref().and_then(|m| serde_json::from_str(m).ok());
            match resolve(conn, &imp, &account, mapping.as_ref()) {
                Ok(st) => Ok(Some((imp, account, st))),
                Err(AppError::Validation(m)) => fail(conn, id, &m).map(|_| None),
                Err(e) => Err(e),
            }
        })
        .await?;
    let Some((imp, account, st)) = prepared else { return Ok(()) };
    let (st, account) = (std::sync::Arc::new(st), std::sync::Arc::new(account));
    let mut offset = imp.done_rows as usize;
    while offset < st.rows.len() {
        let end = (offset + CHUNK).min(st.rows.len());
        let (s, a, notify) = (st.clone(), account.clone(), !imp.silent);
        let stepped = ctx.db(move |conn| step(conn, id, &a, &s.rows[offset..end], offset, notify)).await;
        match stepped {
            Ok(Claim::Stored) => offset = end,
            Ok(Claim::Moved(done)) => offset = done,
            Ok(Claim::Ended) => return Ok(()),
            Err(e) if ctx.is_last_attempt() => {
                ctx.db(move |conn| fail(conn, id, "Không lưu được sao kê; hãy thử nhập lại.")).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    ctx.db(move |conn| finish(conn, &Actor::system("worker"), id, &account, &st)).await?;
    Ok(())
}

fn fail(conn: &mut DbConn, id: i64, reason: &str) -> AppResult<()> {
    diesel::update(statement_imports::table.find(id))
        .set((statement_imports::status.eq(Status::Failed.as_str()), statement_imports::error.eq(Some(reason))))
        .execute(conn)?;
    audit::record(
        conn,
        &Actor::system("worker"),
        "statement_import",
        id,
        "fail",
        None,
        Some(serde_json::json!({ "error": reason })),
    )?;
    Ok(())
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
