//! Zalo: login with Zalo (the owner's user id and name), hubgate's Official Account
//! (its rotating tokens, sending a text), and the OA webhook's events with the
//! `/invite: <code>` flow. Protocol facts: ../shared/reference/zalo-oa.md.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::{Config, ZaloConfig};
use crate::db::schema::{integration_recipients, integrations, zalo_events, zalo_replies, zalo_tokens};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::secrets::{Column, ZALO_ACCESS, ZALO_REFRESH};

/// The seed's five replies (casso-zalo-oa-integration.vi.txt).
pub const REPLY_SYNTAX: &str = "Cú pháp không hợp lệ. Hãy gửi: /invite: <mã giới thiệu>";
pub const REPLY_ALREADY: &str = "Tài khoản Zalo đã được thêm trước đó hoặc người gửi là chủ tích hợp.";
pub const REPLY_BAD_CODE: &str = "Mã giới thiệu không hợp lệ.";
pub const REPLY_ADDED: &str = "Thêm tài khoản Zalo vào tích hợp thành công.";

pub fn reply_owner(who: &str, integration: &str) -> String {
    format!(
        "Tài khoản Zalo {who} đã được thêm vào tích hợp \"{integration}\" và sẽ nhận tin nhắn khi có giao dịch mới."
    )
}

// ---------------------------------------------------------------- login with Zalo

/// Where the browser goes to log in with Zalo (PKCE, S256).
pub fn authorize_url(cfg: &ZaloConfig, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let mut u = reqwest::Url::parse(&format!("{}/v4/permission", cfg.oauth_url)).unwrap_or_else(|_| {
        reqwest::Url::parse("https://oauth.zaloapp.com/v4/permission").unwrap_or_else(|_| unreachable!())
    });
    u.query_pairs_mut()
        .append_pair("app_id", &cfg.app_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", challenge)
        .append_pair("state", state);
    u.to_string()
}

/// PKCE: a verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn error_of(v: &serde_json::Value) -> Option<String> {
    let code = v["error"].as_i64().or_else(|| v["error"].as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    if code == 0 && v.get("error_name").is_none() {
        return None;
    }
    let text = v["error_description"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .or_else(|| v["error_name"].as_str())
        .unwrap_or("lỗi không rõ");
    Some(format!("Zalo trả lỗi {code}: {text}"))
}

async fn json_of(resp: Result<reqwest::Response, reqwest::Error>) -> Result<serde_json::Value, String> {
    let resp = resp.map_err(|e| format!("Không gọi được Zalo: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("Không đọc được trả lời của Zalo: {e}"))?;
    serde_json::from_str(&text).map_err(|_| {
        format!("Zalo trả lời không đúng định dạng (HTTP {status}): {}", text.chars().take(200).collect::<String>())
    })
}

/// Code → the user's access token → (Zalo user id, name).
pub async fn login_user(
    http: &reqwest::Client,
    cfg: &ZaloConfig,
    code: &str,
    verifier: &str,
) -> Result<(String, String), String> {
    let token = json_of(
        http.post(format!("{}/v4/access_token", cfg.oauth_url))
            .timeout(Duration::from_secs(10))
            .header("secret_key", &cfg.app_secret)
            .form(&[
                ("code", code),
                ("app_id", cfg.app_id.as_str()),
                ("grant_type", "authorization_code"),
                ("code_verifier", verifier),
            ])
            .send()
            .await,
    )
    .await?;
    if let Some(e) = error_of(&token) {
        return Err(e);
    }
    let access = token["access_token"].as_str().ok_or("Zalo không trả access_token.")?;
    let me = json_of(
        http.get(format!("{}/v2.0/me", cfg.graph_url))
            .query(&[("fields", "id,name")])
            .timeout(Duration::from_secs(10))
            .header("access_token", access)
            .send()
            .await,
    )
    .await?;
    if let Some(e) = error_of(&me) {
        return Err(e);
    }
    let id = me["id"].as_str().map(str::to_string).or_else(|| me["id"].as_i64().map(|i| i.to_string()));
    let id = id.filter(|s| !s.is_empty() && s.len() <= 64).ok_or("Zalo không trả mã người dùng.")?;
    let name: String = me["name"].as_str().unwrap_or("").chars().take(100).collect();
    Ok((id, name))
}

// ---------------------------------------------------------------- the OA's tokens

/// The OA's tokens live in the single row 1 of `zalo_tokens`; their seal is bound to it.
const TOKEN_ROW: i64 = 1;

fn seal(config: &Config, column: &Column, s: &str) -> AppResult<String> {
    config.keyring().seal(column, TOKEN_ROW, s).map_err(|e| AppError::internal(anyhow::anyhow!(e)))
}

fn open(config: &Config, column: &Column, s: &str) -> AppResult<String> {
    config.keyring().open(column, TOKEN_ROW, s).map_err(|e| e.for_people(column, TOKEN_ROW))
}

/// What the token row says to do.
enum Step {
    Token(String),
    /// Another node holds the refresh lease.
    Wait,
    /// We hold the lease: spend this refresh token (of this generation).
    Refresh(String, i64),
}

fn lease_or_token(conn: &mut DbConn, config: &Config, refused: Option<&str>) -> AppResult<Step> {
    crate::db::tx(conn, |conn| {
        let t = now();
        let exists = zalo_tokens::table.find(TOKEN_ROW).count().get_result::<i64>(conn)? > 0;
        if !exists {
            if config.zalo.refresh_token.is_empty() {
                return Err(AppError::Validation("Chưa cấu hình refresh token của Zalo OA.".into()));
            }
            let epoch = chrono::DateTime::from_timestamp(0, 0).map(|d| d.naive_utc()).unwrap_or_default();
            crate::with_conn!(conn, |c| diesel::insert_into(zalo_tokens::table)
                .values((
                    zalo_tokens::id.eq(TOKEN_ROW),
                    zalo_tokens::access_sealed.eq(seal(config, &ZALO_ACCESS, "")?),
                    zalo_tokens::refresh_sealed.eq(seal(config, &ZALO_REFRESH, &config.zalo.refresh_token)?),
                    zalo_tokens::access_expires_at.eq(epoch),
                    zalo_tokens::generation.eq(0i64),
                    zalo_tokens::updated_at.eq(t),
                ))
                .on_conflict_do_nothing()
                .execute(c))?;
        }
        let (access, refresh, expires, generation, leased): (
            String,
            String,
            NaiveDateTime,
            i64,
            Option<NaiveDateTime>,
        ) = zalo_tokens::table
            .find(TOKEN_ROW)
            .select((
                zalo_tokens::access_sealed,
                zalo_tokens::refresh_sealed,
                zalo_tokens::access_expires_at,
                zalo_tokens::generation,
                zalo_tokens::refreshing_until,
            ))
            .first(conn)?;
        let access = open(config, &ZALO_ACCESS, &access)?;
        if !access.is_empty() && expires > t + chrono::Duration::minutes(5) && refused != Some(access.as_str()) {
            return Ok(Step::Token(access));
        }
        if leased.is_some_and(|u| u > t) {
            return Ok(Step::Wait);
        }
        let got = diesel::update(
            zalo_tokens::table
                .find(TOKEN_ROW)
                .filter(zalo_tokens::generation.eq(generation))
                .filter(zalo_tokens::refreshing_until.is_null().or(zalo_tokens::refreshing_until.lt(t))),
        )
        .set(zalo_tokens::refreshing_until.eq(t + chrono::Duration::seconds(30)))
        .execute(conn)?;
        Ok(if got == 1 { Step::Refresh(open(config, &ZALO_REFRESH, &refresh)?, generation) } else { Step::Wait })
    })
}

/// The OA access token to use now: the stored one while it is valid (and is not the one
/// Zalo just refused), else a refresh. One node at a time spends the single-use refresh
/// token (a 30-second lease on the row); the rotated one is stored with the new access
/// token, under the same generation check, before anyone else may refresh.
pub async fn oa_token(state: &crate::services::Services, refused: Option<String>) -> AppResult<String> {
    let cfg = state.config.zalo.clone();
    for _ in 0..100 {
        let (config, refused2) = (state.config.clone(), refused.clone());
        let step = state.db(move |conn| lease_or_token(conn, &config, refused2.as_deref())).await?;
        let (refresh, generation) = match step {
            Step::Token(a) => return Ok(a),
            Step::Wait => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Step::Refresh(r, g) => (r, g),
        };
        let answer = state
            .http
            .post(format!("{}/v4/oa/access_token", cfg.oauth_url))
            .timeout(Duration::from_secs(10))
            .header("secret_key", &cfg.app_secret)
            .form(&[
                ("refresh_token", refresh.as_str()),
                ("app_id", cfg.app_id.as_str()),
                ("grant_type", "refresh_token"),
            ])
            .send()
            .await;
        let parsed = json_of(answer).await.and_then(|v| match error_of(&v) {
            Some(e) => Err(format!("Không làm mới được token Zalo OA: {e}")),
            None => Ok(v),
        });
        let config = state.config.clone();
        let stored = state
            .db(move |conn| {
                let t = now();
                let target = zalo_tokens::table.find(TOKEN_ROW).filter(zalo_tokens::generation.eq(generation));
                let v = match parsed {
                    Ok(v) => v,
                    Err(e) => {
                        diesel::update(target)
                            .set(zalo_tokens::refreshing_until.eq(None::<NaiveDateTime>))
                            .execute(conn)?;
                        return Err(AppError::Validation(e));
                    }
                };
                let access = v["access_token"].as_str().filter(|s| !s.is_empty()).unwrap_or("").to_string();
                if access.is_empty() {
                    diesel::update(target)
                        .set(zalo_tokens::refreshing_until.eq(None::<NaiveDateTime>))
                        .execute(conn)?;
                    return Err(AppError::Validation("Zalo không trả access_token khi làm mới.".into()));
                }
                let new_refresh = v["refresh_token"].as_str().filter(|s| !s.is_empty()).unwrap_or(&refresh);
                let secs = v["expires_in"]
                    .as_i64()
                    .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or(90_000)
                    .clamp(60, 400_000);
                diesel::update(target)
                    .set((
                        zalo_tokens::access_sealed.eq(seal(&config, &ZALO_ACCESS, &access)?),
                        zalo_tokens::refresh_sealed.eq(seal(&config, &ZALO_REFRESH, new_refresh)?),
                        zalo_tokens::access_expires_at.eq(t + chrono::Duration::seconds(secs)),
                        zalo_tokens::generation.eq(generation + 1),
                        zalo_tokens::refreshing_until.eq(None::<NaiveDateTime>),
                        zalo_tokens::updated_at.eq(t),
                    ))
                    .execute(conn)?;
                Ok(access)
            })
            .await?;
        return Ok(stored);
    }
    Err(AppError::Validation("Đang chờ làm mới token Zalo OA quá lâu.".into()))
}

// ---------------------------------------------------------------- sending

/// How a send ended, as the reference says to treat each code.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Ok,
    /// -216 / -220: refresh the token and try again.
    Token(String),
    /// Not following, no interaction, blocked, banned: mark the recipient, no retry.
    Recipient(String),
    /// Rate limit (-32) or night time (-234): try again after the wait.
    Later(chrono::Duration, String),
    /// Anything else: the usual retry schedule.
    Failed(String),
}

/// What one send took and got, for the delivery log.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub sent: Sent,
    pub code: Option<i64>,
    pub duration_ms: i64,
    pub excerpt: String,
}

/// The wait until 06:00 Asia/Ho_Chi_Minh when `at` is in Zalo's quiet hours (22:00–06:00).
pub fn wait_for_morning(at: NaiveDateTime) -> chrono::Duration {
    use chrono::{TimeZone, Timelike};
    let local = chrono::Utc.from_utc_datetime(&at).with_timezone(&crate::fmt::TZ);
    let hour = local.hour();
    if (6..22).contains(&hour) {
        return chrono::Duration::minutes(10);
    }
    let day = if hour >= 22 { local.date_naive() + chrono::Duration::days(1) } else { local.date_naive() };
    let six = crate::fmt::local_midnight_utc(day) + chrono::Duration::hours(6);
    (six - at).max(chrono::Duration::minutes(1))
}

pub fn classify(code: i64, message: &str) -> Sent {
    match code {
        0 => Sent::Ok,
        -216 | -220 | -124 => Sent::Token(format!("Zalo {code}: {message}")),
        -213 => Sent::Recipient("Chưa quan tâm Zalo OA".into()),
        -230 | -232 => Sent::Recipient("Không tương tác với OA trong 7 ngày".into()),
        -217 => Sent::Recipient("Đã chặn Zalo OA".into()),
        -227 => Sent::Recipient("Tài khoản Zalo bị khóa hoặc không hoạt động".into()),
        -32 => Sent::Later(chrono::Duration::seconds(60), format!("Zalo {code}: vượt giới hạn gửi")),
        -234 => Sent::Later(wait_for_morning(now()), format!("Zalo {code}: không gửi vào ban đêm")),
        _ => Sent::Failed(format!("Zalo {code}: {message}")),
    }
}

/// One text message from the OA to a Zalo user.
pub async fn send_text(
    http: &reqwest::Client,
    cfg: &ZaloConfig,
    access: &str,
    user_id: &str,
    text: &str,
) -> SendResult {
    let started = Instant::now();
    let body = serde_json::json!({ "recipient": { "user_id": user_id }, "message": { "text": text } });
    let resp = http
        .post(format!("{}/v3.0/oa/message/cs", cfg.openapi_url))
        .timeout(Duration::from_secs(10))
        .header("access_token", access)
        .json(&body)
        .send()
        .await;
    let elapsed = || started.elapsed().as_millis() as i64;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return SendResult {
                sent: Sent::Failed(format!("Không gọi được Zalo: {e}")),
                code: None,
                duration_ms: elapsed(),
                excerpt: String::new(),
            };
        }
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(300).collect();
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            return SendResult {
                sent: Sent::Failed(format!("Zalo trả lời không đúng định dạng (HTTP {status})")),
                code: None,
                duration_ms: elapsed(),
                excerpt,
            };
        }
    };
    let code = v["error"].as_i64().unwrap_or(if status.is_success() { 0 } else { -1 });
    SendResult {
        sent: classify(code, v["message"].as_str().unwrap_or("")),
        code: Some(code),
        duration_ms: elapsed(),
        excerpt,
    }
}

/// Sends with the current token; on a token error refreshes once and sends again.
pub async fn send_with_refresh(state: &crate::services::Services, user_id: &str, text: &str) -> SendResult {
    let first = oa_token(state, None).await;
    let access = match first {
        Ok(a) => a,
        Err(e) => {
            return SendResult {
                sent: Sent::Failed(e.to_string()),
                code: None,
                duration_ms: 0,
                excerpt: String::new(),
            };
        }
    };
    let r = send_text(&state.http, &state.config.zalo, &access, user_id, text).await;
    if !matches!(r.sent, Sent::Token(_)) {
        return r;
    }
    match oa_token(state, Some(access)).await {
        Ok(fresh) => send_text(&state.http, &state.config.zalo, &fresh, user_id, text).await,
        Err(e) => SendResult {
            sent: Sent::Failed(e.to_string()),
            code: r.code,
            duration_ms: r.duration_ms,
            excerpt: r.excerpt,
        },
    }
}

// ---------------------------------------------------------------- the OA webhook

/// `X-ZEvent-Signature: mac=<hex>`: SHA-256 of app_id + raw body + timestamp + OA secret.
pub fn signature_ok(cfg: &ZaloConfig, header: &str, body: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if cfg.oa_secret.is_empty() {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
    let app_id = v["app_id"].as_str().map(str::to_string).or_else(|| v["app_id"].as_i64().map(|i| i.to_string()));
    let timestamp =
        v["timestamp"].as_str().map(str::to_string).or_else(|| v["timestamp"].as_i64().map(|i| i.to_string()));
    let (Some(app_id), Some(timestamp)) = (app_id, timestamp) else { return false };
    let mut h = Sha256::new();
    h.update(app_id.as_bytes());
    h.update(body);
    h.update(timestamp.as_bytes());
    h.update(cfg.oa_secret.as_bytes());
    let expected = hex::encode(h.finalize());
    let given = header.trim();
    let given = given.strip_prefix("mac=").unwrap_or(given).to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The event's name and its user (sender of a text, follower of a follow).
pub fn event_identity(v: &serde_json::Value) -> (String, String) {
    let name: String = v["event_name"].as_str().unwrap_or("").chars().take(64).collect();
    let id = |x: &serde_json::Value| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|i| i.to_string()));
    let sender = id(&v["sender"]["id"]).or_else(|| id(&v["follower"]["id"])).unwrap_or_default();
    (name, sender.chars().take(64).collect())
}

pub const EVENT_JOB: &str = "zalo.event";

/// Keeps the raw event and enqueues its processing (one job per event; a job works
/// through its sender's unprocessed events in order).
pub fn store_event(conn: &mut DbConn, body: &str) -> AppResult<i64> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let (name, sender) = event_identity(&v);
    crate::db::tx(conn, |conn| {
        let id: i64 = crate::with_conn!(conn, |c| diesel::insert_into(zalo_events::table)
            .values((
                zalo_events::event_name.eq(&name),
                zalo_events::sender_id.eq(&sender),
                zalo_events::body.eq(body),
                zalo_events::received_at.eq(now()),
            ))
            .returning(zalo_events::id)
            .get_result(c))?;
        let opts = crate::worker::JobOptions {
            unique_key: Some(format!("zalo-event:{id}")),
            max_attempts: 5,
            ..Default::default()
        };
        crate::worker::enqueue(conn, EVENT_JOB, &serde_json::json!({ "sender": sender }), &opts)?;
        Ok(id)
    })
}

/// One parsed `/invite` message.
#[derive(Debug, PartialEq)]
pub enum Invite {
    Code(String),
    BadSyntax,
    NotACommand,
}

pub fn parse_invite(text: &str) -> Invite {
    let t = text.trim();
    let Some(rest) = t.get(..7).filter(|p| p.eq_ignore_ascii_case("/invite")).map(|_| &t[7..]) else {
        return Invite::NotACommand;
    };
    let code = rest.trim_start().strip_prefix(':').unwrap_or("").trim();
    if code.is_empty() || code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Invite::BadSyntax;
    }
    Invite::Code(code.to_ascii_uppercase())
}

/// A new invitation code: 8 characters without look-alikes.
pub fn new_invite_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..8).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

fn queue_reply(conn: &mut DbConn, event_id: i64, sender: &str, user_id: &str, text: &str) -> AppResult<()> {
    diesel::insert_into(zalo_replies::table)
        .values((
            zalo_replies::event_id.eq(event_id),
            zalo_replies::sender_id.eq(sender),
            zalo_replies::user_id.eq(user_id),
            zalo_replies::text.eq(text),
        ))
        .execute(conn)?;
    Ok(())
}

/// Applies one event: its state change and its replies (as jobs) commit together with
/// the event's `processed_at`, and an event already processed changes nothing.
pub fn process_event(conn: &mut DbConn, event_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let t = now();
        let claimed = diesel::update(zalo_events::table.find(event_id).filter(zalo_events::processed_at.is_null()))
            .set(zalo_events::processed_at.eq(t))
            .execute(conn)?;
        if claimed == 0 {
            return Ok(());
        }
        let body: String = zalo_events::table.find(event_id).select(zalo_events::body).first(conn)?;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let (name, sender) = event_identity(&v);
        let outcome = match name.as_str() {
            "user_send_text" if !sender.is_empty() => {
                let text = v["message"]["text"].as_str().unwrap_or("");
                invite(conn, event_id, &sender, text)?
            }
            "unfollow" if !sender.is_empty() => {
                let n =
                    set_status_everywhere(conn, &sender, "unreachable", Some("Đã bỏ quan tâm Zalo OA"), &["active"])?;
                format!("unfollow: {n} recipients marked")
            }
            "follow" | "user_send_text" if !sender.is_empty() => {
                let n = set_status_everywhere(conn, &sender, "active", None, &["unreachable"])?;
                format!("{name}: {n} recipients reachable again")
            }
            _ => "ignored".to_string(),
        };
        diesel::update(zalo_events::table.find(event_id)).set(zalo_events::outcome.eq(outcome)).execute(conn)?;
        Ok(())
    })
}

fn set_status_everywhere(
    conn: &mut DbConn,
    user_id: &str,
    status: &str,
    note: Option<&str>,
    from: &[&str],
) -> AppResult<usize> {
    let zalo_ids = integrations::table.filter(integrations::channel.eq("zalo")).select(integrations::id);
    Ok(diesel::update(
        integration_recipients::table
            .filter(integration_recipients::address.eq(user_id))
            .filter(integration_recipients::status.eq_any(from))
            .filter(integration_recipients::integration_id.eq_any(zalo_ids)),
    )
    .set((
        integration_recipients::status.eq(status),
        integration_recipients::status_note.eq(note),
        integration_recipients::updated_at.eq(now()),
    ))
    .execute(conn)?)
}

fn invite(conn: &mut DbConn, event_id: i64, sender: &str, text: &str) -> AppResult<String> {
    // Anyone writing to the OA has interacted with it: a "no interaction" mark lifts.
    set_status_everywhere(conn, sender, "active", None, &["unreachable"])?;
    let code = match parse_invite(text) {
        Invite::NotACommand => return Ok("text without a command".into()),
        Invite::BadSyntax => {
            queue_reply(conn, event_id, sender, sender, REPLY_SYNTAX)?;
            return Ok("invite: bad syntax".into());
        }
        Invite::Code(c) => c,
    };
    let found: Option<(i64, String)> = integrations::table
        .filter(integrations::invite_code.eq(&code))
        .filter(integrations::channel.eq("zalo"))
        .filter(integrations::deleted_at.is_null())
        .select((integrations::id, integrations::name))
        .first(conn)
        .optional()?;
    let Some((integration_id, integration_name)) = found else {
        queue_reply(conn, event_id, sender, sender, REPLY_BAD_CODE)?;
        return Ok("invite: unknown code".into());
    };
    let existing: Option<(String, String)> = integration_recipients::table
        .filter(integration_recipients::integration_id.eq(integration_id))
        .filter(integration_recipients::address.eq(sender))
        .select((integration_recipients::kind, integration_recipients::status))
        .first(conn)
        .optional()?;
    let t = now();
    match existing {
        Some((kind, status)) if kind == "owner" || status != "removed" => {
            queue_reply(conn, event_id, sender, sender, REPLY_ALREADY)?;
            return Ok("invite: already there".into());
        }
        Some(_) => {
            diesel::update(
                integration_recipients::table
                    .filter(integration_recipients::integration_id.eq(integration_id))
                    .filter(integration_recipients::address.eq(sender)),
            )
            .set((
                integration_recipients::status.eq("active"),
                integration_recipients::status_note.eq(None::<String>),
                integration_recipients::updated_at.eq(t),
            ))
            .execute(conn)?;
        }
        None => {
            diesel::insert_into(integration_recipients::table)
                .values((
                    integration_recipients::integration_id.eq(integration_id),
                    integration_recipients::kind.eq("invited"),
                    integration_recipients::address.eq(sender),
                    integration_recipients::display_name.eq(format!("Zalo {sender}")),
                    integration_recipients::status.eq("active"),
                    integration_recipients::created_at.eq(t),
                    integration_recipients::updated_at.eq(t),
                ))
                .execute(conn)?;
        }
    }
    crate::audit::record(
        conn,
        &crate::audit::Actor::system("zalo"),
        "integration",
        integration_id,
        "invite_accepted",
        None,
        Some(serde_json::json!({ "zalo_user_id": sender })),
    )?;
    queue_reply(conn, event_id, sender, sender, REPLY_ADDED)?;
    let owner: Option<String> = integration_recipients::table
        .filter(integration_recipients::integration_id.eq(integration_id))
        .filter(integration_recipients::kind.eq("owner"))
        .select(integration_recipients::address)
        .first(conn)
        .optional()?;
    if let Some(owner) = owner {
        queue_reply(conn, event_id, sender, &owner, &reply_owner(sender, &integration_name))?;
    }
    Ok(format!("invite: added to integration {integration_id}"))
}

/// The `zalo.event` job: this sender's unprocessed events, oldest first, then the
/// replies they produced, in order. Replies are claimed as a batch before sending, so a
/// second job for the same sender never sends one twice; a failed send hands the rest
/// back and the job retries.
pub async fn event_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let sender = ctx.payload["sender"].as_str().unwrap_or("").to_string();
    let s = sender.clone();
    let batch: Vec<(i64, String, String)> = ctx
        .db(move |conn| {
            let ids: Vec<i64> = zalo_events::table
                .filter(zalo_events::sender_id.eq(&s))
                .filter(zalo_events::processed_at.is_null())
                .order(zalo_events::id.asc())
                .select(zalo_events::id)
                .limit(100)
                .load(conn)?;
            for id in ids {
                process_event(conn, id)?;
            }
            // One conditional UPDATE claims the batch: two jobs for the same sender on
            // PostgreSQL cannot both take a row (the second re-checks the predicate).
            let t = now();
            let stale = t - chrono::Duration::minutes(5);
            let unsent = zalo_replies::table
                .filter(zalo_replies::sender_id.eq(&s))
                .filter(zalo_replies::sent_at.is_null())
                .filter(zalo_replies::claimed_at.is_null().or(zalo_replies::claimed_at.lt(stale)));
            let mut rows: Vec<(i64, String, String)> = crate::with_conn!(conn, |c| diesel::update(unsent)
                .set(zalo_replies::claimed_at.eq(t))
                .returning((zalo_replies::id, zalo_replies::user_id, zalo_replies::text))
                .get_results(c))?;
            rows.sort_by_key(|r| r.0);
            Ok(rows)
        })
        .await?;
    for (n, (id, user_id, text)) in batch.iter().enumerate() {
        let r = send_with_refresh(&ctx.services, user_id, text).await;
        let (done, error) = match r.sent {
            Sent::Ok => (true, None),
            // The user cannot be written to: nothing to retry.
            Sent::Recipient(note) => (true, Some(note)),
            Sent::Token(e) | Sent::Later(_, e) | Sent::Failed(e) => (false, Some(e)),
        };
        let (id, rest): (i64, Vec<i64>) = (*id, batch[n..].iter().map(|b| b.0).collect());
        let err = error.clone();
        ctx.db(move |conn| {
            if done {
                diesel::update(zalo_replies::table.find(id))
                    .set((zalo_replies::sent_at.eq(now()), zalo_replies::error.eq(err)))
                    .execute(conn)?;
            } else {
                diesel::update(zalo_replies::table.filter(zalo_replies::id.eq_any(&rest)))
                    .set((zalo_replies::claimed_at.eq(None::<NaiveDateTime>), zalo_replies::error.eq(err)))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await?;
        if !done {
            return Err(error.unwrap_or_default());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_syntax() {
        assert_eq!(parse_invite("/invite: ab12CD34"), Invite::Code("AB12CD34".into()));
        assert_eq!(parse_invite("  /INVITE:XY7  "), Invite::Code("XY7".into()));
        assert_eq!(parse_invite("/invite ab12"), Invite::BadSyntax);
        assert_eq!(parse_invite("/invite:"), Invite::BadSyntax);
        assert_eq!(parse_invite("/invite: mã sai!"), Invite::BadSyntax);
        assert_eq!(parse_invite("chào shop"), Invite::NotACommand);
        assert_eq!(parse_invite("/inv"), Invite::NotACommand);
    }

    #[test]
    fn signature_over_the_raw_body() {
        let cfg = ZaloConfig { oa_secret: "oa-secret".into(), ..Default::default() };
        let body = br#"{"app_id":"123","event_name":"follow","timestamp":"1700000000000"}"#;
        let mut h = Sha256::new();
        h.update(b"123");
        h.update(body);
        h.update(b"1700000000000oa-secret");
        let mac = hex::encode(h.finalize());
        assert!(signature_ok(&cfg, &format!("mac={mac}"), body));
        assert!(signature_ok(&cfg, &mac.to_uppercase(), body));
        assert!(!signature_ok(&cfg, &format!("mac={mac}"), &body[..body.len() - 1]));
        assert!(!signature_ok(&ZaloConfig::default(), &mac, body));
    }

    #[test]
    fn quiet_hours_wait_until_six() {
        use chrono::NaiveDate;
        // 23:30 local = 16:30 UTC → 06:00 local next day = 23:00 UTC: 6.5 hours.
        let at = NaiveDate::from_ymd_opt(2026, 11, 26).and_then(|d| d.and_hms_opt(16, 30, 0)).unwrap_or_default();
        assert_eq!(wait_for_morning(at), chrono::Duration::minutes(390));
        // 03:00 local = 20:00 UTC the day before → 3 hours.
        let at = NaiveDate::from_ymd_opt(2026, 11, 25).and_then(|d| d.and_hms_opt(20, 0, 0)).unwrap_or_default();
        assert_eq!(wait_for_morning(at), chrono::Duration::hours(3));
        assert_eq!(classify(-213, "").clone(), Sent::Recipient("Chưa quan tâm Zalo OA".into()));
    }
}
