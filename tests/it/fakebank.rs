//! A local bank and a local RPA agent on 127.0.0.1 that speak the protocols of
//! docs/BANK-PROTOCOLS.md for real: OAuth2 authorization code with PKCE (S256) and
//! refresh-token rotation, accounts, paginated transactions, token expiry, 429s with
//! Retry-After, a flaky page; and the agent's login sessions. Tests steer it through
//! its shared state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use sha2::Digest;

pub const CLIENT_ID: &str = "ocb-client-id";
pub const CLIENT_SECRET: &str = "ocb-client-secret-do-not-leak";
pub const AGENT_TOKEN: &str = "agent-token";
pub const BANK_PASSWORD: &str = "mat-khau-ngan-hang";

#[derive(Default)]
pub struct BankState {
    /// code → (PKCE challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    pub access: HashSet<String>,
    pub refresh: HashSet<String>,
    /// (id, number, name, balance)
    pub accounts: Vec<(String, String, String, i64)>,
    pub txs: HashMap<String, Vec<serde_json::Value>>,
    pub page_size: usize,
    /// The next N transaction requests answer 429.
    pub rate_limit: u32,
    /// Transaction pages at this offset answer 500.
    pub fail_at: Option<usize>,
    /// The refresh grant answers invalid_grant.
    pub reject_refresh: bool,
    pub sessions: HashSet<String>,
    pub logins: u32,
    pub refreshes: u32,
    pub requests: Vec<String>,
    counter: u64,
}

impl BankState {
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// Adds `n` transactions to an account, ids `{prefix}{k}`, one a minute from `start`.
    pub fn add_txs(&mut self, account: &str, prefix: &str, n: usize, start: chrono::NaiveDateTime) {
        let list = self.txs.entry(account.to_string()).or_default();
        let base = list.len();
        for k in 0..n {
            let i = base + k;
            list.push(serde_json::json!({
                "id": format!("{prefix}{i}"),
                "booking_time": (start + chrono::Duration::minutes(i as i64)).format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
                "amount": if i.is_multiple_of(3) { -((i as i64 % 50) + 1) * 1000 } else { ((i as i64 % 70) + 1) * 1000 },
                "description": format!("Nguyễn Văn An chuyển tiền đơn {i}"),
                "balance": 1_000_000 + i as i64,
                "counter_account": "0123456789",
                "counter_name": "NGUYEN VAN AN",
                "status": "posted"
            }));
        }
    }

    /// Expires every access token the bank issued.
    pub fn expire_tokens(&mut self) {
        self.access.clear();
    }
}

pub struct FakeBank {
    pub base: String,
    pub state: Arc<Mutex<BankState>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeBank {
    fn drop(&mut self) {
        let h = self.handle.clone();
        actix_web::rt::spawn(async move { h.stop(false).await });
    }
}

type Shared = web::Data<Arc<Mutex<BankState>>>;

fn bearer(req: &HttpRequest) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

async fn authorize(state: Shared, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("code_challenge_method") != "S256" || get("response_type") != "code" {
        return HttpResponse::BadRequest().body("bad authorization request");
    }
    let code = s.next("code");
    s.codes.insert(code.clone(), (get("code_challenge"), get("redirect_uri")));
    let location = format!("{}?code={code}&state={}", get("redirect_uri"), urlencoding::encode(&get("state")));
    HttpResponse::SeeOther().insert_header(("location", location)).finish()
}

fn token_pair(s: &mut BankState) -> HttpResponse {
    let access = s.next("access");
    let refresh = s.next("refresh");
    s.access.insert(access.clone());
    s.refresh.insert(refresh.clone());
    HttpResponse::Ok().json(serde_json::json!({
        "access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600
    }))
}

async fn token(state: Shared, req: HttpRequest, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Basic {basic}") {
        return HttpResponse::Unauthorized().json(serde_json::json!({ "error": "invalid_client" }));
    }
    let invalid = || HttpResponse::BadRequest().json(serde_json::json!({ "error": "invalid_grant" }));
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some((challenge, redirect)) = s.codes.remove(&get("code")) else { return invalid() };
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
            if computed != challenge || redirect != get("redirect_uri") {
                return invalid();
            }
            token_pair(&mut s)
        }
        "refresh_token" => {
            s.refreshes += 1;
            // Rotation: a refresh token works once.
            if s.reject_refresh || !s.refresh.remove(&get("refresh_token")) {
                return invalid();
            }
            token_pair(&mut s)
        }
        _ => invalid(),
    }
}

fn accounts_json(s: &BankState) -> HttpResponse {
    let accounts: Vec<_> = s
        .accounts
        .iter()
        .map(|(id, number, name, balance)| serde_json::json!({ "id": id, "number": number, "name": name, "balance": balance }))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "accounts": accounts }))
}

fn page_json(s: &mut BankState, account: &str, q: &HashMap<String, String>) -> HttpResponse {
    s.requests.push(format!("tx {account} {:?}", q.get("cursor")));
    if s.rate_limit > 0 {
        s.rate_limit -= 1;
        return HttpResponse::TooManyRequests().insert_header(("Retry-After", "120")).finish();
    }
    let start: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    if s.fail_at == Some(start) {
        return HttpResponse::InternalServerError().body("flaky page");
    }
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).min(s.page_size.max(1));
    let all = s.txs.get(account).cloned().unwrap_or_default();
    let end = (start + limit).min(all.len());
    let page: Vec<_> = all.get(start..end).map(<[_]>::to_vec).unwrap_or_default();
    let balance = s.accounts.iter().find(|a| a.0 == account).map(|a| a.3);
    HttpResponse::Ok().json(serde_json::json!({
        "transactions": page, "next_cursor": end.to_string(), "has_more": end < all.len(), "balance": balance
    }))
}

async fn bank_accounts(state: Shared, req: HttpRequest) -> HttpResponse {
    let s = state.lock().unwrap_or_else(|e| e.into_inner());
    if !s.access.contains(&bearer(&req)) {
        return HttpResponse::Unauthorized().finish();
    }
    accounts_json(&s)
}

async fn bank_txs(
    state: Shared,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    if !s.access.contains(&bearer(&req)) {
        return HttpResponse::Unauthorized().finish();
    }
    page_json(&mut s, &path.into_inner(), &q)
}

async fn agent_login(state: Shared, req: HttpRequest, body: web::Json<serde_json::Value>) -> HttpResponse {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    if bearer(&req) != AGENT_TOKEN {
        return HttpResponse::Unauthorized().finish();
    }
    s.logins += 1;
    if body["password"] != BANK_PASSWORD {
        return HttpResponse::Ok().json(
            serde_json::json!({ "session_id": "", "status": "failed", "message": "Sai tên đăng nhập hoặc mật khẩu" }),
        );
    }
    let sid = s.next("session");
    s.sessions.insert(sid.clone());
    HttpResponse::Created().json(serde_json::json!({ "session_id": sid, "status": "active" }))
}

async fn agent_accounts(state: Shared, req: HttpRequest, sid: web::Path<String>) -> HttpResponse {
    let s = state.lock().unwrap_or_else(|e| e.into_inner());
    if bearer(&req) != AGENT_TOKEN || !s.sessions.contains(&sid.into_inner()) {
        return HttpResponse::Unauthorized().finish();
    }
    accounts_json(&s)
}

async fn agent_txs(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let (sid, account) = path.into_inner();
    if bearer(&req) != AGENT_TOKEN || !s.sessions.contains(&sid) {
        return HttpResponse::Unauthorized().finish();
    }
    page_json(&mut s, &account, &q)
}

impl FakeBank {
    pub async fn start() -> FakeBank {
        let state = Arc::new(Mutex::new(BankState { page_size: 100, ..Default::default() }));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/ocb/oauth2/authorize", web::get().to(authorize))
                .route("/ocb/oauth2/token", web::post().to(token))
                .route("/ocb/v1/accounts", web::get().to(bank_accounts))
                .route("/ocb/v1/accounts/{id}/transactions", web::get().to(bank_txs))
                .route("/agent/v1/sessions", web::post().to(agent_login))
                .route("/agent/v1/sessions/{sid}/accounts", web::get().to(agent_accounts))
                .route("/agent/v1/sessions/{sid}/accounts/{id}/transactions", web::get().to(agent_txs))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeBank { base: format!("http://{addr}"), state, handle }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut BankState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// The app's configuration for this bank and agent.
    pub fn configure(&self, c: &mut hubgate::config::Config) {
        c.banking.api_urls.insert("OCB".into(), format!("{}/ocb", self.base));
        c.banking.rpa_url = Some(format!("{}/agent", self.base));
        c.banking.rpa_token = AGENT_TOKEN.into();
    }
}
