//! The Casso-compatible public API (`/v2/…`, and v1's token exchange), so a program
//! written against Casso works against hubgate by changing only its base URL
//! (../shared/reference/casso-api-v2.md). Every answer is the `{error, message, data}`
//! envelope; a person's mistake is a 4xx with a message that says what to fix, never a
//! 500.

pub mod docs;
pub mod keys;
pub mod oauth;
pub mod oauth_pages;
pub mod pages;
pub mod types;

use std::num::NonZeroU32;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::banking::models::Transaction;
use crate::business::models::BankAccount;
use crate::db::schema::{banks, integrations};
use crate::error::AppError;
use crate::web::AppState;
use crate::web::access::Access;
use keys::Caller;
use types::{Envelope, ErrorBody, Null};

const P: Access = Access::Public;

// Authenticated by the API key or token in each request, not by a session.
crate::routes! {
    GET "/v2/openapi.json" => P, docs::openapi_json;
    GET "/docs/api" => P, docs::reference;
    POST "/v1/token" => P, token;
    GET "/v2/userInfo" => P, user_info;
    GET "/v2/transactions" => P, transactions;
    GET "/v2/transactions/{id}" => P, transaction;
    GET "/v2/accounts" => P, accounts;
    GET "/v2/accounts/{id}" => P, account;
    POST "/v2/sync" => P, sync;
    POST "/v2/webhooks" => P, create_webhook;
    DELETE "/v2/webhooks" => P, delete_webhooks_by_url;
    GET "/v2/webhooks/{id}" => P, get_webhook;
    PUT "/v2/webhooks/{id}" => P, update_webhook;
    DELETE "/v2/webhooks/{id}" => P, delete_webhook;
}

/// A key may burst to this many times its per-second rate; beyond it 429 with Retry-After.
pub const BURST_FACTOR: u32 = 2;

/// An answer of the API: the envelope, with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: i64,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 401, "Unauthorized Access")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, 404, format!("{what} not found"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 422, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        r.json(ErrorBody { error: self.code, message: self.message.clone(), data: Null })
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::from(e).into()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => ApiError::not_found("Resource"),
            AppError::Validation(m) | AppError::Conflict(m) | AppError::TooLarge(m) => ApiError::invalid(m),
            AppError::Forbidden(_) | AppError::Csrf => ApiError::unauthorized(),
            AppError::Unavailable => Self::new(StatusCode::SERVICE_UNAVAILABLE, 503, "Service unavailable"),
            AppError::Internal(e) => {
                tracing::error!(error = %e, "API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, 500, "Internal error")
            }
        }
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

fn ok<T: Serialize>(data: T) -> ApiResult {
    Ok(HttpResponse::Ok().json(Envelope { error: 0, message: "success".into(), data }))
}

/// Unknown paths under `/v1/` and `/v2/`: a JSON 404, or 405 with `Allow` when the
/// path exists under other methods.
pub async fn unknown(req: HttpRequest) -> HttpResponse {
    let allowed: Vec<&str> = ROUTES.iter().filter(|r| same_shape(r.path, req.path())).map(|r| r.method).collect();
    if allowed.is_empty() {
        return actix_web::ResponseError::error_response(&ApiError::not_found("Endpoint"));
    }
    let mut r = actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        405,
        format!("Method not allowed: use {}", allowed.join(", ")),
    ));
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        r.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    r
}

/// Whether a concrete path fits a route pattern (`{name}` matches one segment).
fn same_shape(pattern: &str, path: &str) -> bool {
    let (p, q): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len() && p.iter().zip(&q).all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()))
}

/// Per-key request rate, one per app instance (each node counts its own requests).
pub type Limiter = governor::DefaultKeyedRateLimiter<keys::Client>;

pub fn new_limiter(per_second: u32) -> Limiter {
    let burst = NonZeroU32::new(per_second.saturating_mul(BURST_FACTOR)).unwrap_or(NonZeroU32::MIN);
    let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_second(per_second).allow_burst(burst))
}

/// The caller of a request: `Authorization: Apikey <key>`, `Bearer <token>` (an OAuth
/// access token or a v1 token) or a bare v1 token, holding `scope`. Counted against the
/// key's or the app's rate.
async fn caller(state: &AppState, req: &HttpRequest, scope: &'static str) -> Result<Caller, ApiError> {
    let (header, config, limiter) = presented_credentials(state, req)?;
    state.db(move |conn| Ok(admit(conn, &config, &limiter, &header, scope))).await?
}

/// [`caller`] and then `f` in the same database hop (one hop instead of two per request
/// for a read endpoint): `f` runs only for an admitted caller.
async fn with_caller<T, F>(state: &AppState, req: &HttpRequest, scope: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut crate::db::DbConn, &Caller) -> Result<T, ApiError> + Send + 'static,
{
    let (header, config, limiter) = presented_credentials(state, req)?;
    state
        .db(move |conn| {
            Ok(match admit(conn, &config, &limiter, &header, scope) {
                Ok(c) => f(conn, &c),
                Err(e) => Err(e),
            })
        })
        .await?
}

type Presented = (String, std::sync::Arc<crate::config::Config>, std::sync::Arc<Limiter>);

/// The `Authorization` header, when it can be one, with what checking it takes.
fn presented_credentials(state: &AppState, req: &HttpRequest) -> Result<Presented, ApiError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_string();
    if header.is_empty() || header.len() > 512 {
        return Err(ApiError::unauthorized());
    }
    Ok((header, state.config.clone(), state.api_limiter.clone()))
}

/// The caller the header names, if it holds `scope` and is within its rate.
fn admit(
    conn: &mut crate::db::DbConn,
    config: &crate::config::Config,
    limiter: &Limiter,
    header: &str,
    scope: &str,
) -> Result<Caller, ApiError> {
    let (scheme, value) = header.split_once(' ').map(|(s, v)| (s, v.trim())).unwrap_or_default();
    let found = if scheme.eq_ignore_ascii_case("apikey") {
        keys::by_key(conn, config, value)
    } else if scheme.eq_ignore_ascii_case("bearer") && value.starts_with(oauth::ACCESS_PREFIX) {
        oauth::by_access_token(conn, config, value)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        keys::by_token(conn, config, value)
    } else {
        keys::by_token(conn, config, header)
    }?;
    let c = found.ok_or_else(ApiError::unauthorized)?;
    if oauth::scope_bit(scope).is_none_or(|b| c.scopes & b == 0) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            403,
            format!("Insufficient scope: this request needs the `{scope}` scope"),
        ));
    }
    if let Err(not_until) = limiter.check_key(&c.client) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, 429, "Too many requests");
        e.retry_after = Some(wait.as_secs().max(1));
        return Err(e);
    }
    Ok(c)
}

/// The JSON object of a request body; no body at all (zero bytes) is an empty object.
/// Whitespace alone is not JSON, and is refused like any other malformed body.
fn body_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("Body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::invalid("Body must be a JSON object"));
    }
    Ok(v)
}

fn id_of(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::invalid(format!("{what} must be a positive integer")))
}

// ---------------------------------------------------------------- v1 token

#[derive(Deserialize)]
struct TokenBody {
    code: Option<String>,
}

/// Đổi API key lấy access token (6 giờ)
///
/// Cách đổi khóa cũ của Casso mà các ứng dụng mẫu vẫn dùng: sau đó gửi token trong
/// header `Authorization: <token>` (hoặc `Bearer <token>`).
#[utoipa::path(post, path = "/v1/token", tag = docs::TAG_AUTH, security(()),
    request_body = types::TokenRequest,
    responses((status = 200, description = "Access token", body = Envelope<types::TokenGrant>)))]
async fn token(state: web::Data<AppState>, body: web::Bytes) -> ApiResult {
    let v = body_json(&body)?;
    let t: TokenBody = serde_json::from_value(v).map_err(|_| ApiError::invalid("code must be a string"))?;
    let code = t
        .code
        .filter(|c| !c.trim().is_empty() && c.chars().count() <= 200)
        .ok_or_else(|| ApiError::invalid("code is required: the API key, at most 200 characters"))?;
    let config = state.config.clone();
    let got = state.db(move |conn| keys::exchange(conn, &config, &code)).await?;
    let (access_token, expires_in) = got.ok_or_else(ApiError::unauthorized)?;
    ok(types::TokenGrant { access_token, expires_in, refresh_token: Null })
}

// ---------------------------------------------------------------- userInfo, accounts

fn bank_codes(conn: &mut crate::db::DbConn) -> QueryResult<std::collections::HashMap<String, String>> {
    Ok(banks::table.select((banks::bin, banks::casso_code_name)).load::<(String, String)>(conn)?.into_iter().collect())
}

fn code_name(codes: &std::collections::HashMap<String, String>, a: &BankAccount) -> String {
    codes.get(&a.bank_bin).filter(|c| !c.is_empty()).cloned().unwrap_or_else(|| a.bank_code.to_lowercase())
}

fn connect_status(a: &BankAccount) -> i64 {
    i64::from(a.connect_status == "connected")
}

/// Người dùng, doanh nghiệp và các tài khoản ngân hàng của API key
#[utoipa::path(get, path = "/v2/userInfo", tag = docs::TAG_INFO,
    responses((status = 200, description = "Người dùng, doanh nghiệp và tài khoản của khóa", body = Envelope<types::UserInfo>)))]
async fn user_info(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let c = caller(&state, &req, "read").await?;
    let data = state
        .db(move |conn| {
            let user = crate::accounts::models::find(conn, c.user_id)?;
            let b = crate::business::models::business(conn, c.business_id)?;
            let status = crate::business::service::plan_status(conn, &b)?;
            let codes = bank_codes(conn)?;
            let mut accounts = crate::business::models::linked_accounts(conn, b.id)?;
            accounts.sort_by_key(|a| a.id);
            let bank_accs = accounts
                .iter()
                .enumerate()
                .map(|(i, a)| types::UserInfoAccount {
                    id: a.id,
                    bank: types::BankRef {
                        bin: a.bank_bin.parse::<i64>().unwrap_or(0),
                        code_name: code_name(&codes, a),
                    },
                    bank_account_name: Some(a.account_name.clone()).filter(|n| !n.is_empty()),
                    bank_sub_acc_id: a.account_number.clone(),
                    connect_status: connect_status(a),
                    plan_status: status.account_plan_status(i),
                })
                .collect();
            Ok(types::UserInfo {
                user: types::UserRef { id: user.id, email: user.email },
                business: types::BusinessRef { id: b.id, name: b.name },
                bank_accs,
            })
        })
        .await?;
    ok(data)
}

fn local(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    // Fields, not a format string that chrono would parse again for every row.
    let l = crate::fmt::local_time(t);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", l.year(), l.month(), l.day(), l.hour(), l.minute(), l.second())
}

fn account_json(a: &BankAccount, codes: &std::collections::HashMap<String, String>) -> types::Account {
    types::Account {
        id: a.id,
        account_number: a.account_number.clone(),
        account_name: a.account_name.clone(),
        account_type: "payment".into(),
        balance: a.balance,
        currency: "VND".into(),
        bank_name: a.bank_name.clone(),
        bin: a.bank_bin.clone(),
        bank_code_name: code_name(codes, a),
        connect_status: connect_status(a),
        beginning_setting_date: a.sync_from.map(|d| local(d)[..10].to_string()),
        beginning_txn_date: a.sync_from.map(|d| local(d)[..10].to_string()),
        last_sync_at: a.last_sync_at.map(local),
    }
}

/// Danh sách tài khoản ngân hàng đã liên kết
#[utoipa::path(get, path = "/v2/accounts", tag = docs::TAG_ACCOUNTS,
    responses((status = 200, description = "Các tài khoản đã liên kết của doanh nghiệp", body = Envelope<Vec<types::Account>>)))]
async fn accounts(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let c = caller(&state, &req, "read").await?;
    let data = state
        .db(move |conn| {
            let codes = bank_codes(conn)?;
            let mut list = crate::business::models::linked_accounts(conn, c.business_id)?;
            list.sort_by_key(|a| a.id);
            Ok(list.iter().map(|a| account_json(a, &codes)).collect::<Vec<_>>())
        })
        .await?;
    ok(data)
}

/// Một tài khoản ngân hàng
#[utoipa::path(get, path = "/v2/accounts/{id}", tag = docs::TAG_ACCOUNTS,
    params(("id" = i64, Path, minimum = 1, description = "Mã (id) tài khoản")),
    responses((status = 200, description = "Tài khoản", body = Envelope<types::Account>),
        (status = 404, description = "Doanh nghiệp không có tài khoản này", body = ErrorBody)))]
async fn account(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> ApiResult {
    let c = caller(&state, &req, "read").await?;
    let id = id_of(&id, "id")?;
    let data = state
        .db(move |conn| {
            let codes = bank_codes(conn)?;
            let a = crate::business::models::linked_account(conn, c.business_id, id).optional()?;
            Ok(a.map(|a| account_json(&a, &codes)))
        })
        .await?;
    ok(data.ok_or_else(|| ApiError::not_found("Account"))?)
}

// ---------------------------------------------------------------- transactions

fn transaction_json(
    t: &Transaction,
    a: Option<&BankAccount>,
    codes: &std::collections::HashMap<String, String>,
) -> types::TransactionOut {
    let when = local(t.occurred_at);
    types::TransactionOut {
        id: t.id,
        tid: t.bank_tx_id.clone(),
        description: t.description.clone(),
        amount: t.amount,
        cusum_balance_legacy: t.balance,
        cusum_balance: t.balance,
        booking_date: when[..10].to_string(),
        when,
        bank_sub_acc_id: a.map(|a| a.account_number.clone()).unwrap_or_default(),
        payment_channel: t.payment_channel.clone(),
        virtual_account: t.virtual_account.clone(),
        virtual_account_name: t.virtual_account_name.clone(),
        corresponsive_name: t.counter_name.clone(),
        corresponsive_account: t.counter_account.clone(),
        corresponsive_bank_id: t.counter_bank_id.clone(),
        corresponsive_bank_name: t.counter_bank_name.clone(),
        account_id: t.account_id,
        bank_code_name: a.map(|a| code_name(codes, a)).unwrap_or_default(),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TxQuery {
    from_date: Option<String>,
    to_date: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
    sort: Option<String>,
}

pub const MAX_PAGE_SIZE: i64 = 100;

fn date(raw: &Option<String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    match raw.as_deref() {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "{name} must be a date YYYY-MM-DD, got `{}`",
                s.chars().take(40).collect::<String>()
            ))
        }),
    }
}

fn number(raw: &Option<String>, name: &str, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw.as_deref() {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("{name} must be an integer from 1 to {max}"))),
    }
}

/// Danh sách giao dịch
///
/// Giao dịch của doanh nghiệp giữa hai ngày (giờ Việt Nam), từng trang một. Không ghi
/// ngày: 7 ngày gần nhất.
#[utoipa::path(get, path = "/v2/transactions", tag = docs::TAG_TX,
    params(
        ("fromDate" = Option<String>, Query, format = Date, description = "Ngày đầu, YYYY-MM-DD (mặc định: 7 ngày trước toDate)"),
        ("toDate" = Option<String>, Query, format = Date, description = "Ngày cuối, YYYY-MM-DD (mặc định: hôm nay)"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1_000_000, description = "Số trang, từ 1"),
        ("pageSize" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Số dòng mỗi trang (mặc định 10)"),
        ("sort" = inline(Option<types::Sort>), Query, description = "ASC (cũ trước, mặc định) hoặc DESC (mới trước)"),
    ),
    responses((status = 200, description = "Một trang giao dịch", body = Envelope<types::TransactionPage>)))]
async fn transactions(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    // Read before the hop, answered after the caller is known: a stranger's bad query
    // is still a 401.
    let query = transactions_query(&req);
    let data = with_caller(&state, &req, "read", move |conn, c| {
        let (from, to, page, page_size, desc) = query?;
        let (total, rows) = crate::banking::models::page_by_days(
            conn,
            c.business_id,
            from,
            to,
            (page - 1) * page_size,
            page_size,
            desc,
        )?;
        let codes = bank_codes(conn)?;
        let accounts = crate::business::models::linked_accounts(conn, c.business_id)?;
        let records =
            rows.iter().map(|t| transaction_json(t, accounts.iter().find(|a| a.id == t.account_id), &codes)).collect();
        let total_pages = (total + page_size - 1) / page_size;
        Ok(types::TransactionPage {
            page,
            page_size,
            next_page: (page < total_pages).then_some(page + 1),
            prev_page: (page > 1).then_some(page - 1),
            total_pages,
            total_records: total,
            records,
        })
    })
    .await?;
    ok(data)
}

/// `/v2/transactions`' query: (from, to, page, page size, newest first).
fn transactions_query(req: &HttpRequest) -> Result<(NaiveDate, NaiveDate, i64, i64, bool), ApiError> {
    let q: TxQuery =
        serde_html_form::from_str(req.query_string()).map_err(|e| ApiError::invalid(format!("Invalid query: {e}")))?;
    let today = crate::fmt::local_date(crate::db::now());
    let to = date(&q.to_date, "toDate")?.unwrap_or(today);
    let from = date(&q.from_date, "fromDate")?.unwrap_or(to - chrono::Duration::days(7));
    if from > to {
        return Err(ApiError::invalid("fromDate must not be after toDate"));
    }
    let page = number(&q.page, "page", 1, 1_000_000)?;
    let page_size = number(&q.page_size, "pageSize", 10, MAX_PAGE_SIZE)?;
    let desc = match q.sort.as_deref() {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return Err(ApiError::invalid("sort must be ASC or DESC")),
    };
    Ok((from, to, page, page_size, desc))
}

/// Một giao dịch
#[utoipa::path(get, path = "/v2/transactions/{id}", tag = docs::TAG_TX,
    params(("id" = i64, Path, minimum = 1, description = "Mã (id) giao dịch")),
    responses((status = 200, description = "Giao dịch", body = Envelope<types::TransactionOut>),
        (status = 404, description = "Doanh nghiệp không có giao dịch này", body = ErrorBody)))]
async fn transaction(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> ApiResult {
    let c = caller(&state, &req, "read").await?;
    let id = id_of(&id, "id")?;
    let data = state
        .db(move |conn| {
            let Some(t) = crate::banking::models::transaction(conn, c.business_id, id).optional()? else {
                return Ok(None);
            };
            let a = crate::business::models::linked_account(conn, c.business_id, t.account_id).optional()?;
            Ok(Some(transaction_json(&t, a.as_ref(), &bank_codes(conn)?)))
        })
        .await?;
    ok(data.ok_or_else(|| ApiError::not_found("Transaction"))?)
}

// ---------------------------------------------------------------- sync

/// Yêu cầu đồng bộ giao dịch ngay
///
/// `{"bank_acc_id": "<số tài khoản>"}`, hoặc không có thân: mọi tài khoản đã liên kết.
/// Tài khoản do ngân hàng tự đẩy giao dịch không cần đồng bộ và được bỏ qua.
#[utoipa::path(post, path = "/v2/sync", tag = docs::TAG_TX,
    request_body(content = Option<types::SyncRequest>),
    responses((status = 200, description = "Đã xếp lịch đồng bộ", body = Envelope<Null>),
        (status = 404, description = "Không có tài khoản mang số này", body = ErrorBody)))]
async fn sync(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    let c = caller(&state, &req, "sync").await?;
    let v = body_json(&body)?;
    let wanted = match &v["bank_acc_id"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if !s.trim().is_empty() && s.chars().count() <= 50 => Some(s.trim().to_string()),
        serde_json::Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => return Err(ApiError::invalid("bank_acc_id must be an account number")),
    };
    let actor = api_actor(&c);
    state
        .db(move |conn| {
            let accounts = crate::business::models::linked_accounts(conn, c.business_id)?;
            let chosen: Vec<&BankAccount> = match &wanted {
                Some(n) => accounts.iter().filter(|a| a.account_number == *n).collect(),
                None => accounts.iter().collect(),
            };
            if chosen.is_empty() {
                return Err(match wanted {
                    Some(_) => AppError::NotFound,
                    None => AppError::Validation("The business has no linked bank account".into()),
                });
            }
            for a in chosen.into_iter().filter(|a| a.method != "push") {
                crate::banking::service::request_sync(conn, &actor, c.business_id, a.id)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| match e {
            AppError::NotFound => ApiError::not_found("Bank account"),
            e => e.into(),
        })?;
    ok(Null)
}

// ---------------------------------------------------------------- webhooks

fn webhook_json(i: &crate::notify::models::Integration) -> types::Webhook {
    types::Webhook {
        id: i.id,
        channel: "webhook".into(),
        param1: i.url.clone(),
        param2: String::new(),
        send_only_income: i32::from(i.income_only),
    }
}

/// `{"webhook" | "url": …, "secure_token": …, "income_only": …}`.
/// `webhook` wins over `url` when both are sent; a field that is present must be right.
fn webhook_body(body: &[u8]) -> Result<(String, String, bool), ApiError> {
    let v = body_json(body)?;
    let url = match (v.get("webhook"), &v["url"]) {
        (Some(serde_json::Value::String(s)), _) | (None, serde_json::Value::String(s)) => s.trim(),
        (None, serde_json::Value::Null) => "",
        _ => return Err(ApiError::invalid("webhook must be a URL string")),
    };
    if url.is_empty() {
        return Err(ApiError::invalid("webhook (the URL) is required"));
    }
    if url.chars().count() > 2000 {
        return Err(ApiError::invalid("webhook must be at most 2000 characters"));
    }
    let token = match &v["secure_token"] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) if s.chars().count() <= 200 => s.clone(),
        _ => return Err(ApiError::invalid("secure_token must be a string of at most 200 characters")),
    };
    let income_only = match &v["income_only"] {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) if n.as_u64().is_some_and(|n| n <= 1) => n.as_u64() == Some(1),
        _ => return Err(ApiError::invalid("income_only must be true, false, 1 or 0")),
    };
    Ok((url.to_string(), token, income_only))
}

fn api_actor(c: &Caller) -> crate::audit::Actor {
    crate::audit::Actor::user(c.user_id, &c.client.label())
}

/// Tạo webhook
///
/// Mỗi giao dịch mới của doanh nghiệp được gửi (POST) tới URL theo định dạng của Casso,
/// kèm header `secure-token`.
#[utoipa::path(post, path = "/v2/webhooks", tag = docs::TAG_WEBHOOK,
    request_body = types::WebhookRequest,
    responses((status = 200, description = "Webhook", body = Envelope<types::Webhook>)))]
async fn create_webhook(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    let c = caller(&state, &req, "webhooks").await?;
    let (url, token, income_only) = webhook_body(&body)?;
    let input = crate::notify::service::WebhookInput {
        common: crate::notify::service::Common { name: "Webhook (API)".into(), income_only, ..Default::default() },
        url,
        format: "casso_legacy".into(),
    };
    let (i, _, _) =
        crate::notify::service::create_webhook_with(&state, &api_actor(&c), c.business_id, input, Some(token)).await?;
    ok(webhook_json(&i))
}

fn own_webhook(
    conn: &mut crate::db::DbConn,
    business_id: i64,
    id: i64,
) -> Result<crate::notify::models::Integration, AppError> {
    let i = crate::notify::models::integration(conn, business_id, id).optional()?.ok_or(AppError::NotFound)?;
    if i.channel != "webhook" {
        return Err(AppError::NotFound);
    }
    Ok(i)
}

fn webhook_missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 12, "Webhook not exists")
}

/// Xem webhook
#[utoipa::path(get, path = "/v2/webhooks/{id}", tag = docs::TAG_WEBHOOK,
    params(("id" = i64, Path, minimum = 1, description = "Mã (id) webhook")),
    responses((status = 200, description = "Webhook", body = Envelope<types::Webhook>),
        (status = 404, description = "Webhook không tồn tại (error 12)", body = ErrorBody)))]
async fn get_webhook(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> ApiResult {
    let c = caller(&state, &req, "webhooks").await?;
    let id = id_of(&id, "id")?;
    let i = state.db(move |conn| own_webhook(conn, c.business_id, id)).await.map_err(|e| match e {
        AppError::NotFound => webhook_missing(),
        e => e.into(),
    })?;
    ok(webhook_json(&i))
}

/// Sửa webhook
#[utoipa::path(put, path = "/v2/webhooks/{id}", tag = docs::TAG_WEBHOOK,
    params(("id" = i64, Path, minimum = 1, description = "Mã (id) webhook")),
    request_body = types::WebhookRequest,
    responses((status = 200, description = "Webhook sau khi lưu", body = Envelope<types::Webhook>),
        (status = 404, description = "Webhook không tồn tại (error 12)", body = ErrorBody)))]
async fn update_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult {
    let c = caller(&state, &req, "webhooks").await?;
    let id = id_of(&id, "id")?;
    let (url, token, income_only) = webhook_body(&body)?;
    crate::notify::webhook::check_destination(&url, state.config.webhook_allow_private)
        .await
        .map_err(ApiError::invalid)?;
    let keys = state.config.keyring();
    let actor = api_actor(&c);
    let i = state
        .db(move |conn| {
            crate::db::tx(conn, |conn| {
                let before = own_webhook(conn, c.business_id, id)?;
                let t = crate::db::now();
                diesel::update(integrations::table.find(before.id))
                    .set((
                        integrations::url.eq(&url),
                        integrations::income_only.eq(income_only),
                        integrations::updated_at.eq(t),
                    ))
                    .execute(conn)?;
                if !token.is_empty() {
                    crate::notify::models::store_secret(conn, &keys, before.id, &token)?;
                }
                crate::audit::record(
                    conn,
                    &actor,
                    "integration",
                    before.id,
                    "update",
                    Some(serde_json::json!({ "url": before.url, "income_only": before.income_only })),
                    Some(serde_json::json!({ "url": url, "income_only": income_only })),
                )?;
                own_webhook(conn, c.business_id, id)
            })
        })
        .await
        .map_err(|e| match e {
            AppError::NotFound => webhook_missing(),
            e => e.into(),
        })?;
    ok(webhook_json(&i))
}

/// Xóa webhook
#[utoipa::path(delete, path = "/v2/webhooks/{id}", tag = docs::TAG_WEBHOOK,
    params(("id" = i64, Path, minimum = 1, description = "Mã (id) webhook")),
    responses((status = 200, description = "Đã xóa", body = Envelope<Null>),
        (status = 404, description = "Webhook không tồn tại (error 12)", body = ErrorBody)))]
async fn delete_webhook(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> ApiResult {
    let c = caller(&state, &req, "webhooks").await?;
    let id = id_of(&id, "id")?;
    let actor = api_actor(&c);
    state
        .db(move |conn| {
            own_webhook(conn, c.business_id, id)?;
            crate::notify::service::delete(conn, &actor, c.business_id, id)
        })
        .await
        .map_err(|e| match e {
            AppError::NotFound => webhook_missing(),
            e => e.into(),
        })?;
    ok(Null)
}

#[derive(Deserialize)]
struct ByUrl {
    webhook: Option<String>,
    url: Option<String>,
}

/// Xóa webhook theo URL
///
/// Mọi webhook của doanh nghiệp có URL này (`?webhook=` hoặc `?url=`).
#[utoipa::path(delete, path = "/v2/webhooks", tag = docs::TAG_WEBHOOK,
    params(("webhook" = Option<String>, Query, min_length = 1, description = "Địa chỉ URL"),
        ("url" = Option<String>, Query, min_length = 1, description = "Như trên, tên gọi khác")),
    responses((status = 200, description = "Đã xóa", body = Envelope<Null>),
        (status = 404, description = "Không có webhook với URL này (error 12)", body = ErrorBody)))]
async fn delete_webhooks_by_url(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let c = caller(&state, &req, "webhooks").await?;
    let q: ByUrl =
        serde_html_form::from_str(req.query_string()).map_err(|e| ApiError::invalid(format!("Invalid query: {e}")))?;
    let url = q.webhook.or(q.url).map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
    let url = url.ok_or_else(|| ApiError::invalid("webhook (the URL) is required"))?;
    let actor = api_actor(&c);
    let n = state
        .db(move |conn| {
            let ids: Vec<i64> = crate::notify::models::integrations_of(conn, c.business_id)?
                .into_iter()
                .filter(|i| i.channel == "webhook" && i.url == url)
                .map(|i| i.id)
                .collect();
            for id in &ids {
                crate::notify::service::delete(conn, &actor, c.business_id, *id)?;
            }
            Ok(ids.len())
        })
        .await?;
    if n == 0 {
        return Err(webhook_missing());
    }
    ok(Null)
}
