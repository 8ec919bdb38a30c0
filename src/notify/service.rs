//! Integrations and their deliveries.
//!
//! Rules: a delivery exists once per (integration, transaction, recipient) — a unique
//! key — and is created in the same database transaction that stores the transaction
//! (`enqueue_for`), together with its first job, so a notification exists exactly when
//! its transaction does. Each attempt is logged. Failures retry on [`RETRY_AFTER_SECS`]
//! (about three days in all), never sooner than the receiver's Retry-After; `410 Gone`
//! disables the webhook; a webhook failing for [`DISABLE_AFTER_DAYS`] days is disabled
//! and the owners are mailed. While the month's quota is used up, deliveries are
//! created `held` and sent by nobody until a replay.

use chrono::{Duration, NaiveDateTime};

use super::models::{self, Integration, NewIntegration};
use super::webhook::{self, Attempt};
use crate::audit::{self, Actor};
use crate::banking::models::Transaction;
use crate::business::models::BankAccount;
use crate::config::Config;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::outbound::{OutgoingMail, queue_mail};
use crate::web::AppState;
use crate::worker::runner::JobCtx;
use crate::worker::{JobOptions, enqueue};

pub const DELIVER_JOB: &str = "notify.deliver";
/// Waits before attempts 2, 3, …: 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h, 24 h.
pub const RETRY_AFTER_SECS: [i64; 8] = [60, 300, 1_800, 7_200, 21_600, 43_200, 86_400, 86_400];
pub const DISABLE_AFTER_DAYS: i64 = 3;

fn seal(config: &Config, s: &str) -> AppResult<String> {
    crate::secrets::seal(&config.secret, s).map_err(|e| AppError::internal(anyhow::anyhow!(e)))
}

fn open(config: &Config, s: &str) -> AppResult<String> {
    crate::secrets::open(&config.secret, s).map_err(|e| AppError::internal(anyhow::anyhow!(e)))
}

/// What a person types to add a webhook.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub name: String,
    pub url: String,
    pub format: String,
    pub income_only: bool,
    pub accounts: Vec<i64>,
}

/// A transaction to show in a test call.
fn sample(business_id: i64) -> Transaction {
    let t = now();
    Transaction {
        id: 0,
        business_id,
        account_id: 0,
        bank_tx_id: "TEST-HUBGATE".into(),
        amount: 10_000,
        description: "Giao dịch thử từ hubgate".into(),
        balance: Some(1_000_000),
        occurred_at: t,
        pending: false,
        counter_account: String::new(),
        counter_name: String::new(),
        counter_bank_id: String::new(),
        counter_bank_name: String::new(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: "test".into(),
        source: "test".into(),
        search_key: String::new(),
        created_at: t,
        deleted_at: None,
    }
}

fn sample_account(business_id: i64) -> BankAccount {
    BankAccount {
        id: 0,
        business_id,
        bank_code: "TEST".into(),
        bank_name: "Ngân hàng thử".into(),
        account_number: "0000000000".into(),
        account_name: "TAI KHOAN THU".into(),
        method: "test".into(),
        connect_status: "connected".into(),
        created_at: now(),
        removed_at: None,
        connection_id: None,
        bank_bin: String::new(),
        external_id: String::new(),
        balance: None,
        sync_from: None,
        sync_cursor: None,
        last_sync_at: None,
        next_sync_at: None,
        rate_limited_until: None,
        rate_limit_source: None,
        last_error: None,
    }
}

/// Adds a webhook, then calls it once with a sample transaction. Returns the webhook,
/// its secret (shown once) and the test call's result.
pub async fn create_webhook(
    state: &AppState,
    actor: &Actor,
    business_id: i64,
    input: WebhookInput,
) -> AppResult<(Integration, String, Attempt)> {
    let name: String = input.name.trim().chars().take(80).collect();
    let name = if name.is_empty() { "Webhook".to_string() } else { name };
    if !webhook::FORMATS.iter().any(|(c, _)| *c == input.format) {
        return Err(AppError::Validation("Định dạng webhook không hợp lệ.".into()));
    }
    webhook::check_destination(&input.url, state.config.webhook_allow_private).await.map_err(AppError::Validation)?;
    let accounts = input.accounts.clone();
    let owned: Vec<i64> = state
        .db(move |conn| {
            Ok(crate::business::models::linked_accounts(conn, business_id)?.into_iter().map(|a| a.id).collect())
        })
        .await?;
    if accounts.iter().any(|a| !owned.contains(a)) {
        return Err(AppError::Validation("Tài khoản ngân hàng không thuộc doanh nghiệp này.".into()));
    }
    let secret = webhook::new_secret(&input.format);
    let sealed = seal(&state.config, &secret)?;
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    let (a, url, format) = (actor.clone(), input.url.trim().to_string(), input.format.clone());
    let account_ids = accounts.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let income_only = input.income_only;
    let integration = state
        .db(move |conn| {
            crate::db::tx(conn, |conn| {
                let t = now();
                let i = models::insert_integration(
                    conn,
                    &NewIntegration {
                        business_id,
                        channel: "webhook",
                        name: &name,
                        url: &url,
                        format: &format,
                        secret_sealed: &sealed,
                        income_only,
                        account_ids: &account_ids,
                        enabled: true,
                        created_by: user_id,
                        created_at: t,
                        updated_at: t,
                    },
                )?;
                audit::record(
                    conn,
                    &a,
                    "integration",
                    i.id,
                    "create",
                    None,
                    Some(serde_json::json!({ "url": url, "format": format })),
                )?;
                Ok(i)
            })
        })
        .await?;
    let signed = webhook::sign(
        &integration.format,
        &secret,
        "msg_test",
        &sample(business_id),
        &sample_account(business_id),
        chrono::Utc::now().timestamp_millis(),
    );
    let attempt = webhook::post(&state.http, &integration.url, &signed).await;
    Ok((integration, secret, attempt))
}

/// Creates the deliveries (and first jobs) for newly stored transactions; called by the
/// store inside its transaction.
pub fn enqueue_for(conn: &mut DbConn, business_id: i64, new: &[(i64, i64, i64)]) -> AppResult<usize> {
    if new.is_empty() {
        return Ok(0);
    }
    let integrations: Vec<Integration> =
        models::integrations_of(conn, business_id)?.into_iter().filter(|i| i.enabled).collect();
    if integrations.is_empty() {
        return Ok(0);
    }
    let held = crate::business::service::quota_reached(conn, business_id)?;
    let t = now();
    let mut n = 0;
    for (tx_id, account_id, amount) in new {
        for i in integrations.iter().filter(|i| i.covers(*account_id, *amount)) {
            let status = if held { "held" } else { "pending" };
            if let Some(did) = models::insert_delivery(conn, i.id, *tx_id, &i.url, status, t)?
                && !held
            {
                enqueue_attempt(conn, did, 1, None)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn enqueue_attempt(conn: &mut DbConn, delivery_id: i64, attempt: i64, run_at: Option<NaiveDateTime>) -> AppResult<()> {
    let key = format!("deliver:{delivery_id}:{attempt}:{}", run_at.map(|t| t.and_utc().timestamp()).unwrap_or(0));
    let opts = JobOptions { run_at, max_attempts: 3, unique_key: Some(key) };
    enqueue(conn, DELIVER_JOB, &serde_json::json!({ "delivery_id": delivery_id, "attempt": attempt }), &opts)?;
    Ok(())
}

/// The wait before the next attempt: the schedule, or the receiver's Retry-After when
/// longer (capped at a day). None when the schedule is exhausted.
pub fn next_wait(attempt: i64, retry_after: Option<std::time::Duration>) -> Option<Duration> {
    let scheduled = RETRY_AFTER_SECS.get(usize::try_from(attempt - 1).ok()?)?;
    let asked = retry_after.map(|d| d.as_secs().min(86_400) as i64).unwrap_or(0);
    Some(Duration::seconds((*scheduled).max(asked)))
}

/// One attempt of one delivery (the `notify.deliver` job).
pub async fn deliver_job(ctx: JobCtx) -> Result<(), String> {
    let delivery_id = ctx.payload["delivery_id"].as_i64().ok_or("no delivery_id")?;
    let attempt_no = ctx.payload["attempt"].as_i64().unwrap_or(1);
    let config = ctx.state.config.clone();
    let loaded = ctx
        .db(move |conn| {
            let d = models::delivery(conn, delivery_id)?;
            let i = models::integration_by_id(conn, d.integration_id)?;
            let t = crate::banking::models::transaction_any(conn, d.transaction_id)?;
            let a = crate::banking::models::account(conn, t.account_id)?;
            let secret = open(&config, &i.secret_sealed)?;
            Ok((d, i, t, a, secret))
        })
        .await?;
    let (delivery, integration, tx, account, secret) = loaded;
    if matches!(delivery.status.as_str(), "delivered" | "dead") || tx.deleted_at.is_some() {
        return Ok(());
    }
    let attempt = if !integration.enabled || integration.deleted_at.is_some() {
        Attempt {
            status: None,
            duration_ms: 0,
            excerpt: String::new(),
            retry_after: None,
            error: Some("webhook đang tắt".into()),
        }
    } else if let Err(e) = webhook::check_destination(&integration.url, ctx.state.config.webhook_allow_private).await {
        Attempt { status: None, duration_ms: 0, excerpt: String::new(), retry_after: None, error: Some(e) }
    } else {
        let signed = webhook::sign(
            &integration.format,
            &secret,
            &format!("msg_{}", delivery.id),
            &tx,
            &account,
            chrono::Utc::now().timestamp_millis(),
        );
        webhook::post(&ctx.state.http, &integration.url, &signed).await
    };
    let config = ctx.state.config.clone();
    ctx.db(move |conn| record_outcome(conn, &config, &integration, &delivery, attempt_no, &attempt)).await
}

fn record_outcome(
    conn: &mut DbConn,
    config: &Config,
    integration: &Integration,
    delivery: &models::Delivery,
    attempt_no: i64,
    a: &Attempt,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let t = now();
        let attempts = delivery.attempts + 1;
        let code = a.status.map(i64::from);
        models::record_attempt(
            conn,
            &models::NewAttempt {
                delivery_id: delivery.id,
                at: t,
                attempt: attempts,
                status_code: code,
                duration_ms: a.duration_ms,
                excerpt: &a.excerpt,
                error: a.error.as_deref(),
            },
        )?;
        let error = a.error.clone().or_else(|| a.status.map(|s| format!("HTTP {s}")));
        if a.ok() {
            models::update_delivery(conn, delivery.id, "delivered", attempts, code, None, Some(t))?;
            if integration.failing_since.is_some() {
                models::set_failing_since(conn, integration.id, None)?;
            }
            return Ok(());
        }
        if !integration.enabled {
            models::update_delivery(conn, delivery.id, "held", attempts, code, error.as_deref(), None)?;
            return Ok(());
        }
        if a.status == Some(410) {
            models::update_delivery(conn, delivery.id, "dead", attempts, code, error.as_deref(), None)?;
            disable(conn, config, integration, "Máy nhận trả lời 410 Gone: webhook đã được tắt.")?;
            return Ok(());
        }
        let since = integration.failing_since.unwrap_or(t);
        if integration.failing_since.is_none() {
            models::set_failing_since(conn, integration.id, Some(t))?;
        }
        if t - since > Duration::days(DISABLE_AFTER_DAYS) {
            models::update_delivery(conn, delivery.id, "dead", attempts, code, error.as_deref(), None)?;
            disable(
                conn,
                config,
                integration,
                &format!("Máy nhận lỗi liên tục hơn {DISABLE_AFTER_DAYS} ngày: webhook đã được tắt."),
            )?;
            return Ok(());
        }
        match next_wait(attempt_no, a.retry_after) {
            Some(wait) => {
                models::update_delivery(conn, delivery.id, "pending", attempts, code, error.as_deref(), None)?;
                enqueue_attempt(conn, delivery.id, attempt_no + 1, Some(t + wait))?;
            }
            None => models::update_delivery(conn, delivery.id, "dead", attempts, code, error.as_deref(), None)?,
        }
        Ok(())
    })
}

fn disable(conn: &mut DbConn, config: &Config, integration: &Integration, reason: &str) -> AppResult<()> {
    models::set_enabled(conn, integration.id, false, Some(reason), now())?;
    let owners = crate::business::models::owner_emails(conn, integration.business_id)?;
    if !owners.is_empty() {
        let text = format!(
            "Webhook \"{}\" ({}) của doanh nghiệp #{} đã bị tắt.\n{}\n\nKiểm tra máy nhận rồi bật lại và gửi lại các giao dịch tại:\n{}/app/b/{}/integrations/{}\n\nhubgate",
            integration.name,
            integration.url,
            integration.business_id,
            reason,
            config.base_url,
            integration.business_id,
            integration.id
        );
        let subject = format!("Webhook {} đã bị tắt", integration.name);
        queue_mail(conn, &config.outbound, &Actor::system("notify"), &OutgoingMail::simple(owners, subject, text))?;
    }
    audit::record(
        conn,
        &Actor::system("notify"),
        "integration",
        integration.id,
        "disable",
        None,
        Some(serde_json::json!({ "reason": reason })),
    )?;
    Ok(())
}

/// Sends one delivery again now.
pub fn resend(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    integration_id: i64,
    delivery_id: i64,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let i = models::integration(conn, business_id, integration_id)?;
        let d = models::delivery(conn, delivery_id)?;
        if d.integration_id != i.id {
            return Err(AppError::NotFound);
        }
        models::update_delivery(conn, d.id, "pending", d.attempts, d.last_status, d.last_error.as_deref(), None)?;
        enqueue_attempt(conn, d.id, 1, Some(now()))?;
        audit::record(
            conn,
            actor,
            "integration",
            i.id,
            "resend",
            None,
            Some(serde_json::json!({ "delivery_id": d.id })),
        )?;
        Ok(())
    })
}

/// "Gửi lại từ ngày …": every transaction since `from` is delivered again.
pub fn replay(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    integration_id: i64,
    from: NaiveDateTime,
) -> AppResult<usize> {
    crate::db::tx(conn, |conn| {
        let i = models::integration(conn, business_id, integration_id)?;
        let t = now();
        let mut n = 0;
        for (tx_id, account_id, amount) in models::transactions_since(conn, business_id, from, 10_000)? {
            if !i.covers(account_id, amount) {
                continue;
            }
            let did = match models::insert_delivery(conn, i.id, tx_id, &i.url, "pending", t)? {
                Some(id) => id,
                None => models::delivery_of(conn, i.id, tx_id, &i.url)?,
            };
            models::reset_delivery(conn, did)?;
            enqueue_attempt(conn, did, 1, Some(t + Duration::milliseconds(n as i64)))?;
            n += 1;
        }
        audit::record(
            conn,
            actor,
            "integration",
            i.id,
            "replay",
            None,
            Some(serde_json::json!({ "from": from.to_string(), "count": n })),
        )?;
        Ok(n)
    })
}

pub fn set_enabled(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    integration_id: i64,
    enabled: bool,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let i = models::integration(conn, business_id, integration_id)?;
        models::set_enabled(conn, i.id, enabled, None, now())?;
        audit::record(conn, actor, "integration", i.id, if enabled { "enable" } else { "disable" }, None, None)?;
        Ok(())
    })
}

pub fn delete(conn: &mut DbConn, actor: &Actor, business_id: i64, integration_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let i = models::integration(conn, business_id, integration_id)?;
        models::soft_delete(conn, i.id, now())?;
        audit::record(conn, actor, "integration", i.id, "delete", Some(serde_json::json!({ "url": i.url })), None)?;
        Ok(())
    })
}
