//! The ways of getting a bank account's transactions, behind one call:
//! [`Connector::fetch`] returns a page of transactions after a cursor, or says why not
//! in a way the sync engine can act on ([`ConnectorError`]: wait, re-login, or fail).
//!
//! - **Official Open API** (OCB-style): OAuth2 authorization code + PKCE; the bank's
//!   resource API (documented in docs/BANK-PROTOCOLS.md) lists accounts and pages
//!   of transactions.
//! - **RPA agent** ("Kết nối trước – bankHub sau"): a separate service logs in to the
//!   bank with the merchant's username and password and answers the same resource API
//!   under a session; hubgate scrapes nothing itself.
//! - **Demo**: a deterministic generator of realistic transactions (the docs' "tài
//!   khoản demo"): the same slot always yields the same transaction, so re-syncs
//!   de-duplicate like a real bank's.
//! - Push hooks and statement files arrive on their own; they do not fetch.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::fmt::TZ;

/// A transaction as a connector delivers it, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingTx {
    pub bank_tx_id: String,
    pub amount: i64,
    pub description: String,
    pub balance: Option<i64>,
    /// UTC.
    pub occurred_at: NaiveDateTime,
    pub pending: bool,
    pub counter_account: String,
    pub counter_name: String,
    pub counter_bank_id: String,
    pub counter_bank_name: String,
    pub virtual_account: String,
    pub virtual_account_name: String,
    pub payment_channel: String,
    /// The bank re-issued this transaction under a new id (pending → posted): the row
    /// stored under this old id is the same transaction.
    pub replaces: Option<String>,
}

/// One page of transactions.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub transactions: Vec<IncomingTx>,
    /// The position after this page: where the next page, or the next sync, starts.
    pub cursor: Option<String>,
    /// More pages are waiting now.
    pub more: bool,
    /// The account's balance now, when the bank says.
    pub balance: Option<i64>,
}

/// Why a fetch failed, as the sync engine must treat it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// Rate limit (429 + Retry-After) or an outage: try again later, nothing is wrong
    /// with the link.
    #[error("ngân hàng yêu cầu chờ: {message}")]
    RetryLater { after: Option<Duration>, rate_limited: bool, message: String },
    /// The credentials or the consent no longer work: the merchant must link again.
    #[error("cần kết nối lại: {0}")]
    NeedsRelogin(String),
    /// The access token expired: refresh it and try once more.
    #[error("phiên truy cập đã hết hạn")]
    TokenExpired,
    /// Anything else (bad data, unexpected answers): retried with backoff, shown.
    #[error("{0}")]
    Failed(String),
}

/// An account at the bank or agent.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RemoteAccount {
    pub id: String,
    pub number: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub balance: Option<i64>,
}

#[derive(Deserialize)]
struct AccountsBody {
    accounts: Vec<RemoteAccount>,
}

#[derive(Deserialize)]
struct RemoteTx {
    id: String,
    booking_time: String,
    amount: i64,
    #[serde(default)]
    description: String,
    #[serde(default)]
    balance: Option<i64>,
    #[serde(default)]
    counter_account: String,
    #[serde(default)]
    counter_name: String,
    #[serde(default)]
    counter_bank_id: String,
    #[serde(default)]
    counter_bank_name: String,
    #[serde(default)]
    virtual_account: String,
    #[serde(default)]
    virtual_account_name: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    replaces: Option<String>,
}

#[derive(Deserialize)]
struct TxBody {
    transactions: Vec<RemoteTx>,
    #[serde(default)]
    next_cursor: Option<String>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    balance: Option<i64>,
}

/// A bank timestamp: RFC 3339 with an offset, or a local (Asia/Ho_Chi_Minh) time.
pub fn parse_bank_time(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).naive_utc());
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%d"]
        .iter()
        .find_map(|f| {
            NaiveDateTime::parse_from_str(s, f)
                .ok()
                .or_else(|| chrono::NaiveDate::parse_from_str(s, f).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        })
        .and_then(|local| TZ.from_local_datetime(&local).earliest())
        .map(|t| t.with_timezone(&Utc).naive_utc())
}

fn convert(t: RemoteTx) -> Result<IncomingTx, ConnectorError> {
    let occurred_at = parse_bank_time(&t.booking_time)
        .ok_or_else(|| ConnectorError::Failed(format!("ngày giờ giao dịch không đọc được: {}", t.booking_time)))?;
    if t.id.trim().is_empty() || t.id.len() > 200 {
        return Err(ConnectorError::Failed("giao dịch thiếu mã".into()));
    }
    Ok(IncomingTx {
        bank_tx_id: t.id,
        amount: t.amount,
        description: t.description,
        balance: t.balance,
        occurred_at,
        pending: t.status == "pending",
        counter_account: t.counter_account,
        counter_name: t.counter_name,
        counter_bank_id: t.counter_bank_id,
        counter_bank_name: t.counter_bank_name,
        virtual_account: t.virtual_account,
        virtual_account_name: t.virtual_account_name,
        payment_channel: t.channel,
        replaces: t.replaces.filter(|r| !r.is_empty()),
    })
}

/// Maps an HTTP answer of a bank or agent to our error kinds.
async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ConnectorError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after =
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
    Err(match status.as_u16() {
        401 => ConnectorError::TokenExpired,
        403 | 410 => ConnectorError::NeedsRelogin(if body.is_empty() { status.to_string() } else { body }),
        429 => ConnectorError::RetryLater {
            after: Some(Duration::from_secs(retry_after.unwrap_or(60).min(86_400))),
            rate_limited: true,
            message: "quá nhiều yêu cầu (429)".into(),
        },
        500..=599 => ConnectorError::RetryLater {
            after: retry_after.map(|s| Duration::from_secs(s.min(86_400))),
            rate_limited: false,
            message: format!("ngân hàng đang lỗi ({status})"),
        },
        _ => ConnectorError::Failed(format!("ngân hàng trả lời {status}: {body}")),
    })
}

fn transport(e: reqwest::Error) -> ConnectorError {
    ConnectorError::RetryLater {
        after: None, rate_limited: false, message: format!("không kết nối được: {e}")
    }
}

/// The resource API shared by official banks and the RPA agent: accounts, and pages
/// of an account's transactions.
#[derive(Clone, Debug)]
pub struct ResourceApi {
    /// e.g. `https://bank/openapi/v1` or `https://agent/v1/sessions/{sid}`.
    pub base: String,
    pub bearer: String,
}

impl ResourceApi {
    pub async fn accounts(&self, http: &reqwest::Client) -> Result<Vec<RemoteAccount>, ConnectorError> {
        let resp =
            http.get(format!("{}/accounts", self.base)).bearer_auth(&self.bearer).send().await.map_err(transport)?;
        let body: AccountsBody = check(resp)
            .await?
            .json()
            .await
            .map_err(|e| ConnectorError::Failed(format!("danh sách tài khoản không đọc được: {e}")))?;
        Ok(body.accounts)
    }

    pub async fn transactions(
        &self,
        http: &reqwest::Client,
        account_external_id: &str,
        since: Option<NaiveDateTime>,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let mut query: Vec<(&str, String)> = vec![("limit", "200".into())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        } else if let Some(since) = since {
            query.push(("from", Utc.from_utc_datetime(&since).with_timezone(&TZ).format("%Y-%m-%d").to_string()));
        }
        let url = format!("{}/accounts/{}/transactions", self.base, urlencoding::encode(account_external_id));
        let resp = http.get(url).bearer_auth(&self.bearer).query(&query).send().await.map_err(transport)?;
        let body: TxBody = check(resp)
            .await?
            .json()
            .await
            .map_err(|e| ConnectorError::Failed(format!("trang giao dịch không đọc được: {e}")))?;
        let transactions = body.transactions.into_iter().map(convert).collect::<Result<Vec<_>, _>>()?;
        let cursor = body.next_cursor.filter(|c| !c.is_empty());
        Ok(Page { more: body.has_more && cursor.is_some(), transactions, cursor, balance: body.balance })
    }
}

/// The RPA agent's login answer.
#[derive(Debug, Deserialize)]
pub struct AgentSession {
    pub session_id: String,
    pub status: String,
    #[serde(default)]
    pub message: String,
}

/// Logs in to a bank through the RPA agent (`POST {agent}/v1/sessions`).
pub async fn rpa_login(
    http: &reqwest::Client,
    agent: &str,
    token: &str,
    bank_code: &str,
    username: &str,
    password: &str,
) -> Result<AgentSession, ConnectorError> {
    let resp = http
        .post(format!("{agent}/v1/sessions"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "bank": bank_code, "username": username, "password": password }))
        .send()
        .await
        .map_err(transport)?;
    let session: AgentSession = check(resp)
        .await?
        .json()
        .await
        .map_err(|e| ConnectorError::Failed(format!("câu trả lời của dịch vụ kết nối không đọc được: {e}")))?;
    match session.status.as_str() {
        "active" => Ok(session),
        _ => Err(ConnectorError::NeedsRelogin(if session.message.is_empty() {
            "ngân hàng từ chối đăng nhập".into()
        } else {
            session.message
        })),
    }
}

/// The resource API of an agent session.
pub fn rpa_api(agent: &str, token: &str, session_id: &str) -> ResourceApi {
    ResourceApi { base: format!("{agent}/v1/sessions/{}", urlencoding::encode(session_id)), bearer: token.to_string() }
}

// ---- the demo account

const DEMO_PEOPLE: &[&str] = &[
    "NGUYEN VAN AN",
    "TRAN THI BINH",
    "LE HOANG CUONG",
    "PHAM THU DUNG",
    "HOANG MINH DUC",
    "VU THI HOA",
    "DANG QUOC HUY",
];
const DEMO_WHAT: &[&str] = &[
    "thanh toan don hang",
    "chuyen tien an trua",
    "tra tien cafe",
    "thanh toan hoa don",
    "dat coc ban tiec",
    "thanh toan QR",
];

/// The two accounts of a demo link.
pub fn demo_accounts(seed: i64) -> Vec<RemoteAccount> {
    (1..=2)
        .map(|n| RemoteAccount {
            id: format!("demo-{seed}-{n}"),
            number: format!("9{:04}{:06}", seed.rem_euclid(10_000), 100_000 + n * 7919),
            name: "TAI KHOAN DEMO".into(),
            balance: Some(25_000_000 * n),
        })
        .collect()
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed function, so a slot's transaction never changes.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Slots of 20 minutes; about one in three holds a transaction.
const DEMO_SLOT_SECS: i64 = 1200;

/// The demo transactions between the cursor (a slot number) and `now`, at most `limit`.
pub fn demo_page(
    account_external_id: &str,
    since: NaiveDateTime,
    cursor: Option<&str>,
    now: NaiveDateTime,
    limit: usize,
) -> Page {
    let key = account_external_id.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
    let first = cursor.and_then(|c| c.parse::<i64>().ok()).unwrap_or(since.and_utc().timestamp() / DEMO_SLOT_SECS);
    let last = now.and_utc().timestamp() / DEMO_SLOT_SECS;
    let mut out = Vec::new();
    let mut slot = first;
    while slot < last && out.len() < limit {
        let r = mix(key ^ (slot as u64));
        // Transactions happen between 06:00 and 22:00 local time.
        let at = slot * DEMO_SLOT_SECS + (r % 1200) as i64;
        let local_hour = (at + 7 * 3600).rem_euclid(86_400) / 3600;
        if r.is_multiple_of(3)
            && (6..22).contains(&local_hour)
            && let Some(occurred_at) = chrono::DateTime::from_timestamp(at, 0).map(|d| d.naive_utc())
        {
            let income = !r.is_multiple_of(5);
            let amount = ((r >> 8) % 200 + 1) as i64 * 5_000;
            let person = DEMO_PEOPLE[((r >> 16) % DEMO_PEOPLE.len() as u64) as usize];
            let what = DEMO_WHAT[((r >> 24) % DEMO_WHAT.len() as u64) as usize];
            out.push(IncomingTx {
                bank_tx_id: format!("FT{}{:06}", slot, r % 1_000_000),
                amount: if income { amount } else { -amount },
                description: if income {
                    format!("{person} {what}")
                } else {
                    format!("CHUYEN TIEN DEN {person} {what}")
                },
                balance: None,
                occurred_at,
                pending: false,
                counter_account: format!("0{:09}", r % 1_000_000_000),
                counter_name: person.to_string(),
                counter_bank_id: "970436".into(),
                counter_bank_name: "Vietcombank".into(),
                virtual_account: String::new(),
                virtual_account_name: String::new(),
                payment_channel: if r.is_multiple_of(2) { "QR".into() } else { "IBFT".into() },
                replaces: None,
            });
        }
        slot += 1;
    }
    Page { transactions: out, cursor: Some(slot.to_string()), more: slot < last, balance: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_times_are_read_in_local_time_or_with_their_offset() {
        let utc = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok();
        assert_eq!(parse_bank_time("2026-11-25T08:30:00+07:00"), utc("2026-11-25 01:30:00"));
        assert_eq!(parse_bank_time("2026-11-25 08:30:00"), utc("2026-11-25 01:30:00"));
        assert_eq!(parse_bank_time("25/11/2026 08:30"), utc("2026-11-25 01:30:00"));
        assert_eq!(parse_bank_time("hôm qua"), None);
    }

    #[test]
    fn the_demo_is_deterministic_and_pages() {
        let since =
            chrono::NaiveDate::from_ymd_opt(2026, 11, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default();
        let now = since + chrono::Duration::days(3);
        let a = demo_page("demo-1-1", since, None, now, 10_000);
        let b = demo_page("demo-1-1", since, None, now, 10_000);
        assert_eq!(a.transactions, b.transactions);
        assert!(a.transactions.len() > 30, "{}", a.transactions.len());
        let first = demo_page("demo-1-1", since, None, now, 10);
        assert_eq!(first.transactions, a.transactions[..10].to_vec());
        assert!(first.more);
        let rest = demo_page("demo-1-1", since, first.cursor.as_deref(), now, 10_000);
        assert!(!rest.more);
        assert_eq!(rest.transactions, a.transactions[10..].to_vec());
        let other = demo_page("demo-1-2", since, None, now, 10_000);
        assert_ne!(other.transactions.first(), a.transactions.first());
    }
}
