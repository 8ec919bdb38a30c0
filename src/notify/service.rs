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
use super::{message, telegram, zalo};
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::outbound::{OutgoingMail, queue_mail};
use crate::services::Services;
use crate::web::once::{Done, Once};
use crate::worker::runner::JobCtx;
use crate::worker::{JobOptions, enqueue};

pub const DELIVER_JOB: &str = "notify.deliver";
pub const DIGEST_JOB: &str = "notify.digest";
/// Waits before attempts 2, 3, …: 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h, 24 h.
pub const RETRY_AFTER_SECS: [i64; 8] = [60, 300, 1_800, 7_200, 21_600, 43_200, 86_400, 86_400];
pub const DISABLE_AFTER_DAYS: i64 = 3;

/// What every integration has: which accounts, income only or all, the message's fields.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub name: String,
    pub income_only: bool,
    pub accounts: Vec<i64>,
    pub fields: Vec<String>,
    /// The create form's `_once` token: a repeat of the same render saves nothing.
    pub once: Once,
}

/// What a person types to add a webhook.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub common: Common,
    pub url: String,
    pub format: String,
}

/// Everything stored for a new integration.
struct Spec {
    channel: &'static str,
    name: String,
    url: String,
    format: String,
    secret: String,
    settings: serde_json::Value,
    invite_code: Option<String>,
    /// (kind, address, display name)
    recipients: Vec<(String, String, String)>,
}

/// Refuses accounts of another business (a forged form).
async fn check_accounts(state: &Services, business_id: i64, accounts: &[i64]) -> AppResult<()> {
    let owned: Vec<i64> = state
        .db(move |conn| {
            Ok(crate::business::models::linked_accounts(conn, business_id)?.into_iter().map(|a| a.id).collect())
        })
        .await?;
    if accounts.iter().any(|a| !owned.contains(a)) {
        return Err(AppError::Validation("Tài khoản ngân hàng không thuộc doanh nghiệp này.".into()));
    }
    Ok(())
}

fn clean_name(name: &str, fallback: &str) -> String {
    let name: String = name.trim().chars().take(80).collect();
    if name.is_empty() { fallback.to_string() } else { name }
}

async fn insert(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    common: &Common,
    spec: Spec,
) -> AppResult<Integration> {
    check_accounts(state, business_id, &common.accounts).await?;
    let keys = state.config.keyring();
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    let a = actor.clone();
    let account_ids = common.accounts.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let fields = message::normalise(&common.fields);
    let income_only = common.income_only;
    let once = common.once.clone();
    state
        .db(move |conn| {
            let mut made = None;
            // In one transaction with the form's `_once` record: a repeat saves nothing.
            let repeat = crate::web::once::record(conn, user_id, &once, |conn| {
                let t = now();
                let settings = spec.settings.to_string();
                let i = models::insert_integration(
                    conn,
                    &NewIntegration {
                        business_id,
                        channel: spec.channel,
                        name: &spec.name,
                        url: &spec.url,
                        format: &spec.format,
                        secret_sealed: "",
                        income_only,
                        account_ids: &account_ids,
                        enabled: true,
                        created_by: user_id,
                        created_at: t,
                        updated_at: t,
                        fields: &fields,
                        settings: &settings,
                        invite_code: spec.invite_code.as_deref(),
                    },
                )?;
                if !spec.secret.is_empty() {
                    models::store_secret(conn, &keys, i.id, &spec.secret)?;
                }
                for (kind, address, display) in &spec.recipients {
                    models::add_recipient(conn, i.id, kind, address, display, t)?;
                }
                let addresses: Vec<&str> = spec.recipients.iter().map(|(_, a, _)| a.as_str()).collect();
                audit::record(
                    conn,
                    &a,
                    "integration",
                    i.id,
                    "create",
                    None,
                    Some(serde_json::json!({
                        "channel": spec.channel, "url": spec.url, "format": spec.format,
                        "recipients": addresses, "fields": fields,
                    })),
                )?;
                let location = format!("/app/b/{business_id}/integrations/{}", i.id);
                made = Some(i);
                Ok(Done::new(
                    location,
                    "Biểu mẫu này đã được gửi: tích hợp đã được lưu ở lần gửi trước (xem danh sách tích hợp).",
                ))
            })?;
            // The form is shown again with the message (a webhook's secret, shown with
            // the first answer only, cannot be shown again).
            made.ok_or(AppError::Validation(repeat.message))
        })
        .await
}

/// Adds a webhook, then calls it once with a sample transaction. Returns the webhook,
/// its secret (shown once) and the test call's result.
pub async fn create_webhook(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    input: WebhookInput,
) -> AppResult<(Integration, String, Attempt)> {
    create_webhook_with(state, actor, business_id, input, None).await
}

/// As [`create_webhook`], with the secret the caller chose (Casso's API lets the client
/// set the legacy `secure_token`); a new one when None or empty.
pub async fn create_webhook_with(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    input: WebhookInput,
    secret: Option<String>,
) -> AppResult<(Integration, String, Attempt)> {
    if !webhook::FORMATS.iter().any(|(c, _)| *c == input.format) {
        return Err(AppError::Validation("Định dạng webhook không hợp lệ.".into()));
    }
    webhook::check_destination(&input.url, state.config.webhook_allow_private).await.map_err(AppError::Validation)?;
    let secret = secret.filter(|s| !s.is_empty()).unwrap_or_else(|| webhook::new_secret(&input.format));
    let spec = Spec {
        channel: "webhook",
        name: clean_name(&input.common.name, "Webhook"),
        url: input.url.trim().to_string(),
        format: input.format.clone(),
        secret: secret.clone(),
        settings: serde_json::json!({}),
        invite_code: None,
        recipients: vec![],
    };
    let integration = insert(state, actor, business_id, &input.common, spec).await?;
    let (tx, account) = message::sample(business_id);
    let signed =
        webhook::sign(&integration.format, &secret, "msg_test", &tx, &account, chrono::Utc::now().timestamp_millis());
    let attempt = webhook::post(&state.http, &integration.url, &signed).await;
    Ok((integration, secret, attempt))
}

/// Chat ids as typed: separated by commas, spaces or lines.
pub fn split_list(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split([',', ';', ' ', '\n', '\r', '\t']).map(str::trim).filter(|p| !p.is_empty()) {
        if !out.iter().any(|o| o == part) {
            out.push(part.to_string());
        }
    }
    out
}

#[derive(Debug, Clone, Default)]
pub struct TelegramInput {
    pub common: Common,
    pub token: String,
    pub chats: String,
}

/// Checks the bot with a test message to each chat, then saves. A token Telegram
/// refuses saves nothing; a chat it refuses is saved and shown as unreachable.
pub async fn create_telegram(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    input: TelegramInput,
) -> AppResult<(Integration, Vec<(String, Tried)>)> {
    let token = input.token.trim().to_string();
    if !telegram::token_ok(&token) {
        return Err(AppError::Validation(
            "Token bot không đúng dạng (ví dụ 123456789:AAH…), lấy từ @BotFather.".into(),
        ));
    }
    let chats = split_list(&input.chats);
    if chats.is_empty() || chats.len() > 20 {
        return Err(AppError::Validation("Nhập từ 1 đến 20 chat id.".into()));
    }
    if let Some(bad) = chats.iter().find(|c| !telegram::chat_ok(c)) {
        return Err(AppError::Validation(format!("Chat id không hợp lệ: {bad}")));
    }
    check_accounts(state, business_id, &input.common.accounts).await?;
    let (tx, account) = message::sample(business_id);
    let text = format!(
        "hubgate: gọi thử tích hợp Telegram.\n\n{}",
        message::text(&message::normalise(&input.common.fields), &tx, &account)
    );
    let mut results = Vec::new();
    for chat in &chats {
        let r = telegram::send(&state.http, &state.config.telegram_api_url, &token, chat, &text).await;
        results.push((chat.clone(), Tried::from_telegram(r)));
    }
    if results.iter().all(|(_, r)| matches!(r.code, Some(401) | Some(404))) {
        return Err(AppError::Validation("Telegram từ chối token bot này (401/404): kiểm tra lại token.".into()));
    }
    let spec = Spec {
        channel: "telegram",
        name: clean_name(&input.common.name, "Telegram"),
        url: String::new(),
        format: String::new(),
        secret: token,
        settings: serde_json::json!({}),
        invite_code: None,
        recipients: chats.iter().map(|c| ("chat".to_string(), c.clone(), c.clone())).collect(),
    };
    let integration = insert(state, actor, business_id, &input.common, spec).await?;
    let iid = integration.id;
    let unreachable: Vec<(String, String)> = results
        .iter()
        .filter_map(|(c, r)| match &r.verdict {
            Verdict::Unreachable(note) => Some((c.clone(), note.clone())),
            _ => None,
        })
        .collect();
    if !unreachable.is_empty() {
        state
            .db(move |conn| {
                for (chat, note) in unreachable {
                    if let Some(r) = models::recipient(conn, iid, &chat)? {
                        models::set_recipient_status(conn, r.id, "unreachable", Some(&note), now())?;
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok((integration, results))
}

#[derive(Debug, Clone, Default)]
pub struct EmailInput {
    pub common: Common,
    pub addresses: String,
    /// 0 = one mail per transaction.
    pub digest_minutes: i64,
}

pub const DIGEST_CHOICES: &[(i64, &str)] = &[
    (0, "Mỗi giao dịch một thư"),
    (15, "Tổng hợp mỗi 15 phút"),
    (60, "Tổng hợp mỗi giờ"),
    (1440, "Tổng hợp mỗi ngày"),
];

/// Saves an e-mail integration and mails its addresses a sample, through the outbox.
pub async fn create_email(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    input: EmailInput,
) -> AppResult<Integration> {
    let addresses = split_list(&input.addresses.to_lowercase());
    if addresses.is_empty() || addresses.len() > 10 {
        return Err(AppError::Validation("Nhập từ 1 đến 10 địa chỉ e-mail.".into()));
    }
    if let Some(bad) = addresses.iter().find(|a| a.parse::<lettre::Address>().is_err()) {
        return Err(AppError::Validation(format!("Địa chỉ e-mail không hợp lệ: {bad}")));
    }
    if !DIGEST_CHOICES.iter().any(|(m, _)| *m == input.digest_minutes) {
        return Err(AppError::Validation("Chọn cách gửi thư trong danh sách.".into()));
    }
    let settings = if input.digest_minutes > 0 {
        serde_json::json!({ "digest_minutes": input.digest_minutes })
    } else {
        serde_json::json!({})
    };
    let spec = Spec {
        channel: "email",
        name: clean_name(&input.common.name, "E-mail"),
        url: String::new(),
        format: String::new(),
        secret: String::new(),
        settings,
        invite_code: None,
        recipients: addresses.iter().map(|a| ("email".to_string(), a.clone(), a.clone())).collect(),
    };
    let integration = insert(state, actor, business_id, &input.common, spec).await?;
    let (config, i, a) = (state.config.clone(), integration.clone(), actor.clone());
    state
        .db(move |conn| {
            let (tx, account) = message::sample(business_id);
            let text = format!(
                "Từ nay hubgate gửi thông báo giao dịch của doanh nghiệp đến địa chỉ này ({}).\nThư mẫu:\n\n{}\n\nhubgate",
                DIGEST_CHOICES.iter().find(|(m, _)| *m == input.digest_minutes).map(|(_, l)| *l).unwrap_or(""),
                message::text(&i.fields, &tx, &account)
            );
            queue_mail(conn, &config.outbound, &a, &OutgoingMail::simple(addresses, "hubgate: đã bật thông báo qua e-mail", text))?;
            Ok(())
        })
        .await?;
    Ok(integration)
}

/// The Zalo account chosen at "Thiết lập Zalo OA nhận dữ liệu".
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ZaloOwner {
    pub user_id: String,
    pub name: String,
}

/// "Gọi thử": a sample message from the OA to the owner's Zalo.
pub async fn zalo_test(state: &Services, business_id: i64, owner: &ZaloOwner, fields: &[String]) -> Tried {
    let (tx, account) = message::sample(business_id);
    let text = format!(
        "hubgate: tin nhắn mẫu thông báo biến động số dư.\n\n{}",
        message::text(&message::normalise(fields), &tx, &account)
    );
    Tried::from_zalo(zalo::send_with_refresh(state, &owner.user_id, &text).await)
}

/// "Lưu": the Zalo OA integration with its owner and a fresh invitation code.
pub async fn create_zalo(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    common: Common,
    owner: ZaloOwner,
) -> AppResult<Integration> {
    if owner.user_id.is_empty() {
        return Err(AppError::Validation("Hãy đăng nhập Zalo trước.".into()));
    }
    let display = if owner.name.is_empty() { format!("Zalo {}", owner.user_id) } else { owner.name.clone() };
    // 32^8 codes: a collision is unlikely enough that the unique index refusing one
    // (an error the person can retry) is the whole handling.
    let spec = Spec {
        channel: "zalo",
        name: clean_name(&common.name, "Zalo OA"),
        url: String::new(),
        format: String::new(),
        secret: String::new(),
        settings: serde_json::json!({ "owner_name": owner.name }),
        invite_code: Some(zalo::new_invite_code()),
        recipients: vec![("owner".into(), owner.user_id.clone(), display)],
    };
    insert(state, actor, business_id, &common, spec).await
}

/// "x" beside an invited Zalo account (or a chat, an address): no more messages to it.
pub fn remove_recipient(
    conn: &mut DbConn,
    actor: &Actor,
    business_id: i64,
    integration_id: i64,
    recipient_id: i64,
) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let i = models::integration(conn, business_id, integration_id)?;
        let r =
            models::recipients_of(conn, i.id)?.into_iter().find(|r| r.id == recipient_id).ok_or(AppError::NotFound)?;
        if r.kind == "owner" {
            return Err(AppError::Validation("Không xóa được chủ tích hợp; hãy xóa cả tích hợp.".into()));
        }
        models::set_recipient_status(conn, r.id, "removed", None, now())?;
        audit::record(
            conn,
            actor,
            "integration",
            i.id,
            "remove_recipient",
            Some(serde_json::json!({ "address": r.address, "status": r.status })),
            Some(serde_json::json!({ "status": "removed" })),
        )?;
        Ok(())
    })
}

/// The settings form of an existing integration: accounts, income only, fields.
pub async fn update_common(
    state: &Services,
    actor: &Actor,
    business_id: i64,
    integration_id: i64,
    common: Common,
) -> AppResult<()> {
    check_accounts(state, business_id, &common.accounts).await?;
    let a = actor.clone();
    state
        .db(move |conn| {
            crate::db::tx(conn, |conn| {
                let i = models::integration(conn, business_id, integration_id)?;
                let account_ids = common.accounts.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                let fields = message::normalise(&common.fields);
                let name = clean_name(&common.name, &i.name);
                models::update_common(conn, i.id, &name, common.income_only, &account_ids, &fields, now())?;
                audit::record(
                    conn,
                    &a,
                    "integration",
                    i.id,
                    "update",
                    Some(serde_json::json!({ "name": i.name, "income_only": i.income_only, "accounts": i.account_ids, "fields": i.fields })),
                    Some(serde_json::json!({ "name": name, "income_only": common.income_only, "accounts": account_ids, "fields": fields })),
                )?;
                Ok(())
            })
        })
        .await
}

/// The addresses a delivery goes to, one delivery each: the webhook's URL; the Zalo
/// owner and the invited users still active; the Telegram chats; one mail (to every
/// address) for e-mail.
pub fn recipients_for(conn: &mut DbConn, i: &Integration) -> AppResult<Vec<String>> {
    Ok(match i.channel.as_str() {
        "webhook" => vec![i.url.clone()],
        "email" => vec!["mail".to_string()],
        _ => {
            models::recipients_of(conn, i.id)?.into_iter().filter(|r| r.status == "active").map(|r| r.address).collect()
        }
    })
}

/// Creates the deliveries (and first jobs) for newly stored transactions; called by the
/// store inside its transaction, before it counts them against the plan.
pub fn enqueue_for(conn: &mut DbConn, business_id: i64, new: &[(i64, i64, i64)]) -> AppResult<usize> {
    if new.is_empty() {
        return Ok(0);
    }
    let integrations: Vec<Integration> =
        models::integrations_of(conn, business_id)?.into_iter().filter(|i| i.enabled).collect();
    if integrations.is_empty() {
        return Ok(0);
    }
    let held = crate::business::service::quota_reached_with(conn, business_id, new.len() as i64)?;
    let mut targets = Vec::with_capacity(integrations.len());
    for i in integrations {
        let to = recipients_for(conn, &i)?;
        targets.push((i, to));
    }
    let t = now();
    let mut n = 0;
    // A page of transactions makes many deliveries: their jobs go in together.
    let mut attempts = Vec::new();
    for (tx_id, account_id, amount) in new {
        for (i, to) in targets.iter().filter(|(i, _)| i.covers(*account_id, *amount)) {
            for recipient in to {
                let status = if held { "held" } else { "pending" };
                if let Some(did) = models::insert_delivery(conn, i.id, *tx_id, recipient, status, t)?
                    && !held
                {
                    match i.digest_minutes() {
                        Some(m) => enqueue_digest(conn, i.id, m, t)?,
                        None => attempts.push(attempt_job(did, 1, None)),
                    }
                    n += 1;
                }
            }
        }
    }
    crate::worker::enqueue_many(conn, DELIVER_JOB, &attempts)?;
    Ok(n)
}

/// A delivery attempt's job: keyed by the delivery, the attempt and its time, so an
/// attempt is queued once however often it is asked for.
fn attempt_job(delivery_id: i64, attempt: i64, run_at: Option<NaiveDateTime>) -> (serde_json::Value, JobOptions) {
    let key = format!("deliver:{delivery_id}:{attempt}:{}", run_at.map(|t| t.and_utc().timestamp()).unwrap_or(0));
    let opts = JobOptions { run_at, max_attempts: 3, unique_key: Some(key) };
    (serde_json::json!({ "delivery_id": delivery_id, "attempt": attempt }), opts)
}

fn enqueue_attempt(conn: &mut DbConn, delivery_id: i64, attempt: i64, run_at: Option<NaiveDateTime>) -> AppResult<()> {
    let (payload, opts) = attempt_job(delivery_id, attempt, run_at);
    enqueue(conn, DELIVER_JOB, &payload, &opts)?;
    Ok(())
}

/// One digest job per integration and period: the period's end is its key and its time.
fn enqueue_digest(conn: &mut DbConn, integration_id: i64, minutes: i64, at: NaiveDateTime) -> AppResult<()> {
    let period = minutes.max(1) * 60;
    let end = (at.and_utc().timestamp() / period + 1) * period;
    let run_at = chrono::DateTime::from_timestamp(end, 0).map(|d| d.naive_utc());
    let opts = JobOptions { run_at, max_attempts: 8, unique_key: Some(format!("digest:{integration_id}:{end}")) };
    enqueue(conn, DIGEST_JOB, &serde_json::json!({ "integration_id": integration_id }), &opts)?;
    Ok(())
}

/// The wait before the next attempt: the schedule, or the receiver's Retry-After when
/// longer (capped at a day). None when the schedule is exhausted.
pub fn next_wait(attempt: i64, retry_after: Option<std::time::Duration>) -> Option<Duration> {
    let scheduled = RETRY_AFTER_SECS.get(usize::try_from(attempt - 1).ok()?)?;
    let asked = retry_after.map(|d| d.as_secs().min(86_400) as i64).unwrap_or(0);
    Some(Duration::seconds((*scheduled).max(asked)))
}

/// What to do after an attempt, whatever the channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// The schedule (never sooner than the given wait).
    Retry(Option<std::time::Duration>),
    /// The channel asked for a pause (rate limit, night): retry after it, not a failure
    /// of the endpoint.
    Pause(Duration),
    /// 410 Gone: the webhook is disabled.
    Gone,
    /// This recipient cannot be written to: marked, told to the owner, no retry.
    Unreachable(String),
    /// Not sent and never will be (recipient removed, integration off).
    Dropped(String),
}

/// One attempt as logged: the status (HTTP, or the channel's own code), time, excerpt.
#[derive(Debug, Clone)]
pub struct Tried {
    pub code: Option<i64>,
    pub duration_ms: i64,
    pub excerpt: String,
    pub error: Option<String>,
    pub verdict: Verdict,
}

impl Tried {
    fn dropped(reason: &str) -> Tried {
        Tried {
            code: None,
            duration_ms: 0,
            excerpt: String::new(),
            error: Some(reason.to_string()),
            verdict: Verdict::Dropped(reason.to_string()),
        }
    }

    pub fn from_webhook(a: &Attempt) -> Tried {
        let verdict = if a.ok() {
            Verdict::Delivered
        } else if a.status == Some(410) {
            Verdict::Gone
        } else {
            Verdict::Retry(a.retry_after)
        };
        let error = if a.ok() { None } else { a.error.clone().or_else(|| a.status.map(|s| format!("HTTP {s}"))) };
        Tried { code: a.status.map(i64::from), duration_ms: a.duration_ms, excerpt: a.excerpt.clone(), error, verdict }
    }

    pub fn from_zalo(r: zalo::SendResult) -> Tried {
        let (verdict, error) = match r.sent {
            zalo::Sent::Ok => (Verdict::Delivered, None),
            zalo::Sent::Recipient(note) => (Verdict::Unreachable(note.clone()), Some(note)),
            zalo::Sent::Later(wait, e) => (Verdict::Pause(wait), Some(e)),
            zalo::Sent::Token(e) | zalo::Sent::Failed(e) => (Verdict::Retry(None), Some(e)),
        };
        Tried { code: r.code, duration_ms: r.duration_ms, excerpt: r.excerpt, error, verdict }
    }

    pub fn from_telegram(r: telegram::SendResult) -> Tried {
        let (verdict, error) = match r.sent {
            telegram::Sent::Ok => (Verdict::Delivered, None),
            telegram::Sent::Recipient(note) => (Verdict::Unreachable(note.clone()), Some(note)),
            telegram::Sent::Later(wait, e) => (Verdict::Pause(wait), Some(e)),
            telegram::Sent::Failed(e) => (Verdict::Retry(None), Some(e)),
        };
        Tried { code: r.code, duration_ms: r.duration_ms, excerpt: r.excerpt, error, verdict }
    }
}

/// One attempt of one delivery (the `notify.deliver` job).
pub async fn deliver_job(ctx: JobCtx) -> Result<(), String> {
    let delivery_id = ctx.payload["delivery_id"].as_i64().ok_or("no delivery_id")?;
    let attempt_no = ctx.payload["attempt"].as_i64().unwrap_or(1);
    let config = ctx.services.config.clone();
    let loaded = ctx
        .db(move |conn| {
            let d = models::delivery(conn, delivery_id)?;
            let i = models::integration_by_id(conn, d.integration_id)?;
            let t = crate::banking::models::transaction_any(conn, d.transaction_id)?;
            let a = crate::banking::models::account(conn, t.account_id)?;
            let secret = models::open_secret(&config.keyring(), &i)?;
            let r = models::recipient(conn, i.id, &d.recipient)?;
            Ok((d, i, t, a, secret, r))
        })
        .await?;
    let (delivery, integration, tx, account, secret, recipient) = loaded;
    if matches!(delivery.status.as_str(), "delivered" | "dead") || tx.deleted_at.is_some() {
        return Ok(());
    }
    let state = &ctx.services;
    let tried = if !integration.enabled || integration.deleted_at.is_some() {
        Tried::dropped("tích hợp đang tắt")
    } else if let Some(r) = recipient.as_ref().filter(|r| r.status != "active") {
        Tried::dropped(r.status_note.as_deref().unwrap_or("người nhận đã bị xóa khỏi danh sách"))
    } else {
        match integration.channel.as_str() {
            "webhook" => match webhook::check_destination(&integration.url, state.config.webhook_allow_private).await {
                Err(e) => Tried {
                    code: None,
                    duration_ms: 0,
                    excerpt: String::new(),
                    error: Some(e),
                    verdict: Verdict::Retry(None),
                },
                Ok(()) => {
                    let signed = webhook::sign(
                        &integration.format,
                        &secret,
                        &format!("msg_{}", delivery.id),
                        &tx,
                        &account,
                        chrono::Utc::now().timestamp_millis(),
                    );
                    Tried::from_webhook(&webhook::post(&state.http, &integration.url, &signed).await)
                }
            },
            "zalo" => {
                let text = message::text(&integration.fields, &tx, &account);
                Tried::from_zalo(zalo::send_with_refresh(state, &delivery.recipient, &text).await)
            }
            "telegram" => {
                let text = message::text(&integration.fields, &tx, &account);
                Tried::from_telegram(
                    telegram::send(&state.http, &state.config.telegram_api_url, &secret, &delivery.recipient, &text)
                        .await,
                )
            }
            "email" => {
                // The outbox is the durable step: queueing the mail and marking the
                // delivery done commit together.
                let config = state.config.clone();
                let (i, d) = (integration.clone(), delivery.clone());
                return ctx
                    .db(move |conn| {
                        crate::db::tx(conn, |conn| {
                            let to = email_addresses(conn, i.id)?;
                            if to.is_empty() {
                                return record_outcome(
                                    conn,
                                    &config,
                                    &i,
                                    &d,
                                    attempt_no,
                                    &Tried::dropped("chưa có địa chỉ nhận"),
                                );
                            }
                            let subject = format!(
                                "{} {} – {}",
                                if tx.amount >= 0 { "Tiền vào" } else { "Tiền ra" },
                                crate::fmt::Money(tx.amount.abs()),
                                account.account_number
                            );
                            let text = format!(
                                "{}\n\n--\nhubgate · {}/app/b/{}/transactions/{}",
                                message::text(&i.fields, &tx, &account),
                                config.base_url,
                                i.business_id,
                                tx.id
                            );
                            queue_mail(
                                conn,
                                &config.outbound,
                                &Actor::system("notify"),
                                &OutgoingMail::simple(to.clone(), subject, text),
                            )?;
                            let ok = Tried {
                                code: None,
                                duration_ms: 0,
                                excerpt: format!("Đã xếp thư đến {}", to.join(", ")),
                                error: None,
                                verdict: Verdict::Delivered,
                            };
                            record_outcome(conn, &config, &i, &d, attempt_no, &ok)
                        })
                    })
                    .await
                    .map_err(|e| e.to_string());
            }
            other => Tried::dropped(&format!("kênh không hỗ trợ: {other}")),
        }
    };
    let config = ctx.services.config.clone();
    ctx.db(move |conn| {
        crate::db::tx(conn, |conn| record_outcome(conn, &config, &integration, &delivery, attempt_no, &tried))
    })
    .await
}

fn email_addresses(conn: &mut DbConn, integration_id: i64) -> AppResult<Vec<String>> {
    Ok(models::recipients_of(conn, integration_id)?
        .into_iter()
        .filter(|r| r.kind == "email" && r.status == "active")
        .map(|r| r.address)
        .collect())
}

/// The `notify.digest` job: one mail with every pending transaction of an e-mail
/// integration; the mail and the deliveries' "sent" commit together.
pub async fn digest_job(ctx: JobCtx) -> Result<(), String> {
    let integration_id = ctx.payload["integration_id"].as_i64().ok_or("no integration_id")?;
    let config = ctx.services.config.clone();
    ctx.db(move |conn| {
        crate::db::tx(conn, |conn| {
            let i = models::integration_by_id(conn, integration_id)?;
            let pending = models::pending_of(conn, i.id, 500)?;
            if pending.is_empty() || !i.enabled || i.deleted_at.is_some() {
                return Ok(());
            }
            let to = email_addresses(conn, i.id)?;
            let t = now();
            let mut lines = Vec::new();
            let (mut income, mut spent) = (0i64, 0i64);
            for (_, tx_id) in &pending {
                let tx = crate::banking::models::transaction_any(conn, *tx_id)?;
                if tx.deleted_at.is_some() {
                    continue;
                }
                let account = crate::banking::models::account(conn, tx.account_id)?;
                if tx.amount >= 0 {
                    income += tx.amount;
                } else {
                    spent += -tx.amount;
                }
                lines.push(message::text(&i.fields, &tx, &account));
            }
            if !to.is_empty() && !lines.is_empty() {
                let subject = format!("{} giao dịch mới – tiền vào {}", lines.len(), crate::fmt::Money(income));
                let text = format!(
                    "Tổng hợp {} giao dịch mới.\nTiền vào: {}\nTiền ra: {}\n\n{}\n\n--\nhubgate · {}/app/b/{}/transactions",
                    lines.len(),
                    crate::fmt::Money(income),
                    crate::fmt::Money(spent),
                    lines.join("\n\n"),
                    config.base_url,
                    i.business_id
                );
                queue_mail(conn, &config.outbound, &Actor::system("notify"), &OutgoingMail::simple(to.clone(), subject, text))?;
            }
            let (status, note) = if to.is_empty() { ("dead", Some("chưa có địa chỉ nhận")) } else { ("delivered", None) };
            for (did, _) in &pending {
                let d = models::delivery(conn, *did)?;
                models::record_attempt(
                    conn,
                    &models::NewAttempt {
                        delivery_id: d.id,
                        at: t,
                        attempt: d.attempts + 1,
                        status_code: None,
                        duration_ms: 0,
                        excerpt: &format!("Thư tổng hợp {} giao dịch", lines.len()),
                        error: note,
                    },
                )?;
                let delivered = (status == "delivered").then_some(t);
                models::update_delivery(conn, d.id, status, d.attempts + 1, None, note, delivered)?;
            }
            if pending.len() == 500 {
                enqueue_digest(conn, i.id, 0, t)?;
            }
            Ok(())
        })
    })
    .await
    .map_err(|e| e.to_string())
}

fn record_outcome(
    conn: &mut DbConn,
    config: &Config,
    integration: &Integration,
    delivery: &models::Delivery,
    attempt_no: i64,
    a: &Tried,
) -> AppResult<()> {
    let t = now();
    let attempts = delivery.attempts + 1;
    models::record_attempt(
        conn,
        &models::NewAttempt {
            delivery_id: delivery.id,
            at: t,
            attempt: attempts,
            status_code: a.code,
            duration_ms: a.duration_ms,
            excerpt: &a.excerpt,
            error: a.error.as_deref(),
        },
    )?;
    let (code, error) = (a.code, a.error.as_deref());
    match &a.verdict {
        Verdict::Delivered => {
            models::update_delivery(conn, delivery.id, "delivered", attempts, code, None, Some(t))?;
            if integration.failing_since.is_some() {
                models::set_failing_since(conn, integration.id, None)?;
            }
        }
        Verdict::Dropped(_) if !integration.enabled => {
            models::update_delivery(conn, delivery.id, "held", attempts, code, error, None)?;
        }
        Verdict::Dropped(_) => models::update_delivery(conn, delivery.id, "dead", attempts, code, error, None)?,
        Verdict::Gone => {
            models::update_delivery(conn, delivery.id, "dead", attempts, code, error, None)?;
            disable(conn, config, integration, "Máy nhận trả lời 410 Gone: webhook đã được tắt.")?;
        }
        Verdict::Unreachable(note) => {
            models::update_delivery(conn, delivery.id, "dead", attempts, code, error, None)?;
            if let Some(r) = models::recipient(conn, integration.id, &delivery.recipient)? {
                models::set_recipient_status(conn, r.id, "unreachable", Some(note), t)?;
            }
        }
        Verdict::Pause(wait) => {
            models::update_delivery(conn, delivery.id, "pending", attempts, code, error, None)?;
            // A pause is not a failed attempt of the schedule.
            enqueue_attempt(conn, delivery.id, attempt_no, Some(t + *wait))?;
        }
        Verdict::Retry(retry_after) => {
            let since = integration.failing_since.unwrap_or(t);
            if integration.failing_since.is_none() {
                models::set_failing_since(conn, integration.id, Some(t))?;
            }
            if t - since > Duration::days(DISABLE_AFTER_DAYS) {
                models::update_delivery(conn, delivery.id, "dead", attempts, code, error, None)?;
                let what = integration.channel_label();
                disable(
                    conn,
                    config,
                    integration,
                    &format!("Lỗi liên tục hơn {DISABLE_AFTER_DAYS} ngày: {what} đã được tắt."),
                )?;
                return Ok(());
            }
            match next_wait(attempt_no, *retry_after) {
                Some(wait) => {
                    models::update_delivery(conn, delivery.id, "pending", attempts, code, error, None)?;
                    enqueue_attempt(conn, delivery.id, attempt_no + 1, Some(t + wait))?;
                }
                None => models::update_delivery(conn, delivery.id, "dead", attempts, code, error, None)?,
            }
        }
    }
    Ok(())
}

fn disable(conn: &mut DbConn, config: &Config, integration: &Integration, reason: &str) -> AppResult<()> {
    models::set_enabled(conn, integration.id, false, Some(reason), now())?;
    let owners = crate::business::models::owner_emails(conn, integration.business_id)?;
    if !owners.is_empty() {
        let what = integration.channel_label();
        let target = if integration.url.is_empty() { String::new() } else { format!(" ({})", integration.url) };
        let text = format!(
            "{what} \"{}\"{target} của doanh nghiệp #{} đã bị tắt.\n{}\n\nKiểm tra nơi nhận rồi bật lại và gửi lại các giao dịch tại:\n{}/app/b/{}/integrations/{}\n\nhubgate",
            integration.name, integration.business_id, reason, config.base_url, integration.business_id, integration.id
        );
        let subject = format!("{what} {} đã bị tắt", integration.name);
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
        let to = recipients_for(conn, &i)?;
        for (tx_id, account_id, amount) in models::transactions_since(conn, business_id, from, 10_000)? {
            if !i.covers(account_id, amount) {
                continue;
            }
            for recipient in &to {
                let did = match models::insert_delivery(conn, i.id, tx_id, recipient, "pending", t)? {
                    Some(id) => id,
                    None => models::delivery_of(conn, i.id, tx_id, recipient)?,
                };
                models::reset_delivery(conn, did)?;
                match i.digest_minutes() {
                    Some(m) => enqueue_digest(conn, i.id, m, t)?,
                    None => enqueue_attempt(conn, did, 1, Some(t + Duration::milliseconds(n as i64)))?,
                }
                n += 1;
            }
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
