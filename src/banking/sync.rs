//! The sync engine: per account, pages of transactions from its connector, each page
//! stored in one transaction (de-duplicated by the bank's id; tombstones never come
//! back), the cursor saved only after the last page, so a crash between pages loses
//! nothing and doubles nothing. Waits the bank asks for (429 + Retry-After) are kept
//! and shown; broken credentials move the account to "cần kết nối lại" and mail the
//! owners once; other errors back off.
//!
//! Scheduling: the `bank.sync-due` tick (every 30 s) enqueues a `bank.sync` job for
//! each account whose `next_sync_at` has come, keyed by that time, so several nodes
//! never enqueue it twice; after a sync the next one is set by the plan's interval.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::connectors::{self, ConnectorError, IncomingTx, Page, ResourceApi};
use super::models::{self, AccountSync, NewTransaction};
use super::service::{self, Secrets};
use crate::business::models::BankAccount;
use crate::db::{DbConn, now};
use crate::error::AppResult;
use crate::worker::runner::JobCtx;
use crate::worker::{JobOptions, enqueue};

pub const SYNC_JOB: &str = "bank.sync";
pub const DUE_JOB: &str = "bank.sync-due";
/// Pages one sync reads at most (a runaway cursor cannot loop forever).
const MAX_PAGES: usize = 2_000;
/// Wait after an outage that named no time.
const OUTAGE_WAIT: Duration = Duration::from_secs(300);
/// Wait after an error that is not the bank's wait.
const ERROR_WAIT: Duration = Duration::from_secs(900);

/// What storing one page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub new_ids: Vec<i64>,
    pub known: usize,
    pub replaced: usize,
}

fn new_row(account: &BankAccount, tx: &IncomingTx, source: &str, at: NaiveDateTime) -> NewTransaction {
    let fold = crate::mail::inbound::classify::fold;
    NewTransaction {
        business_id: account.business_id,
        account_id: account.id,
        bank_tx_id: tx.bank_tx_id.clone(),
        amount: tx.amount,
        description: tx.description.chars().take(1000).collect(),
        balance: tx.balance,
        occurred_at: tx.occurred_at,
        pending: tx.pending,
        counter_account: tx.counter_account.chars().take(64).collect(),
        counter_name: tx.counter_name.chars().take(200).collect(),
        counter_bank_id: tx.counter_bank_id.chars().take(32).collect(),
        counter_bank_name: tx.counter_bank_name.chars().take(200).collect(),
        virtual_account: tx.virtual_account.chars().take(64).collect(),
        virtual_account_name: tx.virtual_account_name.chars().take(200).collect(),
        payment_channel: tx.payment_channel.chars().take(64).collect(),
        source: source.to_string(),
        search_key: fold(&format!("{} {} {} {}", tx.description, tx.counter_name, tx.counter_account, tx.bank_tx_id)),
        created_at: at,
    }
}

/// Stores one page in one transaction: new rows inserted, known ones skipped, pending
/// rows the bank re-issued updated in place; new rows count against the plan.
pub fn apply_page(conn: &mut DbConn, account: &BankAccount, txs: &[IncomingTx], source: &str) -> AppResult<Applied> {
    apply_rows(conn, account, txs, source, true)
}

/// [`apply_page`], with the notifications of the new rows left out when `notify` is
/// false (a statement's history imported silently).
pub fn apply_rows(
    conn: &mut DbConn,
    account: &BankAccount,
    txs: &[IncomingTx],
    source: &str,
    notify: bool,
) -> AppResult<Applied> {
    // Taken before the transaction and dropped after its commit (see `Lane`).
    let lane = models::Lane::take(conn);
    crate::db::tx(conn, |conn| {
        let t = now();
        let mut out = Applied::default();
        let mut fresh = Vec::with_capacity(txs.len());
        let mut days = models::DayDeltas::default();
        for tx in txs {
            let row = new_row(account, tx, source, t);
            match &tx.replaces {
                Some(old) if models::replace_pending(conn, account.id, old, &row, &mut days)? => out.replaced += 1,
                _ => fresh.push(row),
            }
        }
        let inserted = models::insert_new(conn, &fresh, &mut days)?;
        out.new_ids = inserted.iter().map(|(id, _)| *id).collect();
        out.known = fresh.len() - out.new_ids.len();
        // The notifications are born with their transactions (same commit).
        if notify && !inserted.is_empty() {
            let new: Vec<(i64, i64, i64)> = inserted.iter().map(|(id, amount)| (*id, account.id, *amount)).collect();
            crate::notify::service::enqueue_for(conn, account.business_id, &new)?;
        }
        // Last, just before the commit: the business's usage and its day sums are rows
        // every store of the business writes, and PostgreSQL holds their locks until
        // the commit (written first, they made concurrent pushes queue behind each
        // other's whole transaction: a push took seconds to reach its webhook).
        if !inserted.is_empty() {
            crate::business::service::record_usage_in(conn, account.business_id, inserted.len() as i64, &lane)?;
        }
        days.apply(conn, &lane)?;
        Ok(out)
    })
}

/// Syncs a demo account right here (the demo data set, so its pages are full at once);
/// the worker keeps it going afterwards. Returns the number of new transactions.
pub fn sync_demo_now(conn: &mut DbConn, account: &BankAccount) -> AppResult<usize> {
    let t = now();
    let since = account.sync_from.unwrap_or(t - chrono::Duration::days(7));
    let mut cursor = account.sync_cursor.clone();
    let mut added = 0;
    loop {
        let page = connectors::demo_page(&account.external_id, since, cursor.as_deref(), t, 500);
        added += apply_page(conn, account, &page.transactions, "sync")?.new_ids.len();
        cursor = page.cursor.clone();
        if !page.more {
            break;
        }
    }
    models::update_account(
        conn,
        account.id,
        &AccountSync {
            sync_cursor: Some(cursor.as_deref()),
            last_sync_at: Some(Some(t)),
            next_sync_at: Some(Some(t + chrono::Duration::minutes(5))),
            ..Default::default()
        },
    )?;
    Ok(added)
}

/// Enqueues a sync of one account now (linking, "Kiểm tra giao dịch mới").
pub fn enqueue_sync(conn: &mut DbConn, account_id: i64, key: &str) -> AppResult<bool> {
    let opts =
        JobOptions { unique_key: Some(format!("bank-sync:{account_id}:{key}")), max_attempts: 3, ..Default::default() };
    Ok(enqueue(conn, SYNC_JOB, &serde_json::json!({ "account_id": account_id }), &opts)?.is_some())
}

/// The tick: a sync job for every account that is due.
pub async fn due_job(ctx: JobCtx) -> Result<(), String> {
    ctx.db(|conn| {
        for (id, at) in models::due_accounts(conn, now(), 500)? {
            enqueue_sync(conn, id, &at.and_utc().timestamp().to_string())?;
        }
        Ok(())
    })
    .await
}

/// Where a sync stands once it stops.
#[derive(Debug)]
enum Stop {
    Done { cursor: Option<String>, balance: Option<i64> },
    Failed(ConnectorError),
}

/// One account's sync (the `bank.sync` job).
pub async fn sync_job(ctx: JobCtx) -> Result<(), String> {
    let account_id = ctx.payload["account_id"].as_i64().ok_or("payload without account_id")?;
    let loaded = ctx.db(move |conn| service::sync_target(conn, account_id)).await?;
    let Some(target) = loaded else { return Ok(()) };
    let stop = run(&ctx, &target).await;
    let interval = target.interval;
    let account = target.account.clone();
    let business_id = account.business_id;
    let config = ctx.services.config.clone();
    ctx.db(move |conn| {
        let t = now();
        match stop {
            Stop::Done { cursor, balance } => models::update_account(
                conn,
                account.id,
                &AccountSync {
                    connect_status: Some("connected"),
                    balance: balance.map(Some),
                    sync_cursor: Some(cursor.as_deref()),
                    last_sync_at: Some(Some(t)),
                    next_sync_at: Some(Some(t + interval)),
                    rate_limited_until: Some(None),
                    rate_limit_source: Some(None),
                    last_error: Some(None),
                },
            )?,
            Stop::Failed(ConnectorError::RetryLater { after, rate_limited, message }) => {
                let wait = after.unwrap_or(OUTAGE_WAIT);
                let until = t + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(5));
                models::update_account(
                    conn,
                    account.id,
                    &AccountSync {
                        next_sync_at: Some(Some(until)),
                        rate_limited_until: Some(rate_limited.then_some(until)),
                        rate_limit_source: Some(rate_limited.then_some("bank")),
                        last_error: Some(Some(&message)),
                        ..Default::default()
                    },
                )?
            }
            Stop::Failed(ConnectorError::NeedsRelogin(message)) => {
                service::needs_relogin(conn, &config, &account, &message)?;
            }
            Stop::Failed(e) => {
                let message = e.to_string();
                models::update_account(
                    conn,
                    account.id,
                    &AccountSync {
                        connect_status: Some("error"),
                        next_sync_at: Some(Some(t + chrono::Duration::from_std(ERROR_WAIT).unwrap_or_default())),
                        last_error: Some(Some(&message)),
                        ..Default::default()
                    },
                )?
            }
        }
        let _ = business_id;
        Ok(())
    })
    .await
}

async fn run(ctx: &JobCtx, target: &service::SyncTarget) -> Stop {
    let mut cursor = target.account.sync_cursor.clone();
    let mut balance = None;
    let mut api: Option<ResourceApi> = None;
    let mut retried_login = false;
    for _ in 0..MAX_PAGES {
        let page = match fetch(ctx, target, &mut api, cursor.as_deref()).await {
            Ok(p) => p,
            Err(ConnectorError::TokenExpired) if !retried_login => {
                // The access token or the agent's session ended: renew once, then retry.
                retried_login = true;
                api = None;
                match service::renew_access(&ctx.services, &target.connection, &target.bank_code, true).await {
                    Ok(_) => continue,
                    Err(e) => return Stop::Failed(e),
                }
            }
            Err(ConnectorError::TokenExpired) => {
                return Stop::Failed(ConnectorError::NeedsRelogin("ngân hàng từ chối phiên truy cập".into()));
            }
            Err(e) => return Stop::Failed(e),
        };
        let account = target.account.clone();
        let txs = page.transactions.clone();
        if let Err(e) = ctx.db(move |conn| apply_page(conn, &account, &txs, "sync")).await {
            return Stop::Failed(ConnectorError::Failed(e));
        }
        if page.balance.is_some() {
            balance = page.balance;
        }
        cursor = page.cursor.clone().or(cursor);
        if !page.more {
            return Stop::Done { cursor, balance };
        }
    }
    Stop::Done { cursor, balance }
}

async fn fetch(
    ctx: &JobCtx,
    target: &service::SyncTarget,
    api: &mut Option<ResourceApi>,
    cursor: Option<&str>,
) -> Result<Page, ConnectorError> {
    let since = target.account.sync_from;
    match target.account.method.as_str() {
        "demo" => Ok(connectors::demo_page(
            &target.account.external_id,
            since.unwrap_or_else(|| now() - chrono::Duration::days(7)),
            cursor,
            now(),
            500,
        )),
        "official" | "rpa" => {
            if api.is_none() {
                *api = Some(service::renew_access(&ctx.services, &target.connection, &target.bank_code, false).await?);
            }
            let api = api.as_ref().ok_or_else(|| ConnectorError::Failed("no API".into()))?;
            api.transactions(&ctx.services.http, &target.account.external_id, since, cursor).await
        }
        other => Err(ConnectorError::Failed(format!("tài khoản {other} không đồng bộ theo lịch"))),
    }
}

/// Sealed secrets of a connection, opened.
/// A value that does not open means linking again (entering the login anew).
pub fn open_secrets(
    config: &crate::config::Config,
    column: &crate::secrets::Column,
    row: i64,
    sealed: Option<&str>,
) -> Result<Secrets, ConnectorError> {
    let Some(sealed) = sealed else { return Ok(Secrets::default()) };
    let clear =
        config.keyring().open(column, row, sealed).map_err(|e| ConnectorError::NeedsRelogin(e.explain(column, row)))?;
    serde_json::from_str(&clear).map_err(|e| ConnectorError::Failed(e.to_string()))
}
