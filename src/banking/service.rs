//! Linking bank accounts and everything around a connection: the official Open API's
//! OAuth dance, the RPA agent's login, the demo account, push hooks, the phone
//! handoff, choosing sub-accounts, manual syncs and deleting a transaction.
//!
//! Rules: client keys, bank logins and tokens are sealed (XChaCha20-Poly1305 under a
//! key derived from the secret key) the moment they arrive and are never shown again;
//! the OAuth `state` is single-use and bound to the connection; PKCE's verifier never
//! leaves the server; every change is audited.

use chrono::NaiveDateTime;
use hmac::{Hmac, Mac};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, Scope, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::catalogue::{self, Bank};
use super::connectors::{self, ConnectorError, IncomingTx, RemoteAccount, ResourceApi};
use super::models::{self, Connection, ConnectionChanges, NewConnection};
use super::sync::{self, Applied, open_secrets};
use crate::accounts::merchant::{new_link_token, presented_link, token_hash};
use crate::audit::{self, Actor};
use crate::business::models::{BankAccount, NewBankAccount};
use crate::config::Config;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::outbound::{OutgoingMail, queue_mail};
use crate::secrets::{BANK_CREDENTIALS, BANK_TOKENS, Column};
use crate::services::Services;
use crate::web::once::{Done, Once};

/// What a connection keeps sealed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
}

fn seal(config: &Config, column: &Column, row: i64, s: &Secrets) -> AppResult<String> {
    let json = serde_json::to_string(s).map_err(AppError::internal)?;
    config.keyring().seal(column, row, &json).map_err(|e| AppError::internal(anyhow::anyhow!(e)))
}

/// Seals a new connection's credentials. The seal is bound to the row id, so it is
/// written right after the insert, in the same transaction.
fn store_credentials(conn: &mut DbConn, config: &Config, id: i64, s: &Secrets) -> AppResult<Connection> {
    let sealed = seal(config, &BANK_CREDENTIALS, id, s)?;
    Ok(models::set_credentials(conn, id, &sealed)?)
}

/// The ways of linking, in the order the page offers them.
pub const METHODS: &[(&str, &str)] = &[
    ("official", "Open API chính thức của ngân hàng"),
    ("rpa", "Kết nối trước – bankHub sau (tài khoản đăng nhập ngân hàng)"),
    ("push", "Ngân hàng / SePay gửi giao dịch đến hubgate (webhook)"),
    ("demo", "Tài khoản demo"),
];

pub fn method_label(code: &str) -> &'static str {
    METHODS.iter().find(|(c, _)| *c == code).map(|(_, l)| *l).unwrap_or("?")
}

/// The bank of a link, or a clear refusal.
pub fn bank(conn: &mut DbConn, bin: &str) -> AppResult<Bank> {
    catalogue::by_bin(conn, bin)?.ok_or_else(|| AppError::Validation("Ngân hàng không có trong danh sách.".into()))
}

fn redirect_url(config: &Config, bank_code: &str) -> String {
    format!("{}/callback/handler/{bank_code}", config.base_url)
}

/// The URL merchants enter at the bank's developer portal.
pub fn official_redirect_url(config: &Config, bank: &Bank) -> String {
    redirect_url(config, &bank.code)
}

type BankClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn oauth_client(config: &Config, bank_code: &str, secrets: &Secrets) -> Result<(BankClient, String), ConnectorError> {
    let base = config
        .banking
        .api_urls
        .get(bank_code)
        .ok_or_else(|| ConnectorError::Failed(format!("máy chủ chưa cấu hình Open API của {bank_code}")))?;
    let bad = |e: oauth2::url::ParseError| ConnectorError::Failed(e.to_string());
    let client = BasicClient::new(ClientId::new(secrets.client_id.clone().unwrap_or_default()))
        .set_client_secret(ClientSecret::new(secrets.client_secret.clone().unwrap_or_default()))
        .set_auth_uri(AuthUrl::new(format!("{base}/oauth2/authorize")).map_err(bad)?)
        .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).map_err(bad)?)
        .set_redirect_uri(RedirectUrl::new(redirect_url(config, bank_code)).map_err(bad)?);
    Ok((client, format!("{base}/v1")))
}

/// Step 1 of the official link: stores the client keys sealed and returns the bank's
/// authorization URL (state and PKCE bound to this connection).
pub fn start_official(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    business_id: i64,
    bin: &str,
    client_id: &str,
    client_secret: &str,
) -> AppResult<String> {
    let bank = bank(conn, bin)?;
    if !bank.official_api || !config.banking.api_urls.contains_key(&bank.code) {
        return Err(AppError::Validation(format!(
            "{} chưa hỗ trợ kết nối Open API trên máy chủ này.",
            bank.short_name
        )));
    }
    let (client_id, client_secret) = (client_id.trim(), client_secret.trim());
    if client_id.is_empty() || client_secret.is_empty() || client_id.len() > 500 || client_secret.len() > 500 {
        return Err(AppError::Validation("Nhập đủ hai key ngân hàng cấp (Client ID và Client Secret).".into()));
    }
    let mut secrets = Secrets {
        client_id: Some(client_id.to_string()),
        client_secret: Some(client_secret.to_string()),
        ..Default::default()
    };
    let (client, _) = oauth_client(config, &bank.code, &secrets).map_err(|e| AppError::Validation(e.to_string()))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("accounts".into()))
        .add_scope(Scope::new("transactions".into()))
        .set_pkce_challenge(challenge)
        .url();
    secrets.pkce_verifier = Some(verifier.secret().clone());
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let t = now();
        let c = models::insert_connection(
            conn,
            &NewConnection {
                business_id,
                bank_bin: &bank.bin,
                method: "official",
                status: "pending",
                oauth_state: Some(state.secret()),
                external_ref: None,
                push_key: None,
                created_by: user_id,
                created_at: t,
                updated_at: t,
            },
        )?;
        let c = store_credentials(conn, config, c.id, &secrets)?;
        audit::record(
            conn,
            actor,
            "bank_connection",
            c.id,
            "start_official",
            None,
            Some(serde_json::json!({ "bank": bank.code })),
        )?;
        Ok(url.to_string())
    })
}

/// Step 2: the bank sent the browser back with `code` and `state`. Returns the
/// connection, now holding sealed tokens. The caller checked who may finish it.
pub async fn finish_official(state: &Services, connection: Connection, code: &str) -> AppResult<Connection> {
    let config = state.config.clone();
    let bin = connection.bank_bin.clone();
    let bank = state.db(move |conn| bank(conn, &bin)).await?;
    let secrets = open_secrets(&config, &BANK_CREDENTIALS, connection.id, connection.credentials_sealed.as_deref())
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    let (client, _) = oauth_client(&config, &bank.code, &secrets).map_err(|e| AppError::Validation(e.to_string()))?;
    let verifier = secrets.pkce_verifier.clone().unwrap_or_default();
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&state.http)
        .await;
    let id = connection.id;
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(connection = id, error = ?e, "bank refused the authorization code");
            let message = "Ngân hàng không chấp nhận mã xác thực (đã hết hạn hoặc không hợp lệ). Vui lòng kết nối lại.";
            state
                .db(move |conn| {
                    models::update_connection(
                        conn,
                        id,
                        &ConnectionChanges {
                            status: Some("error"),
                            oauth_state: Some(None),
                            last_error: Some(Some(message)),
                            updated_at: Some(now()),
                            ..Default::default()
                        },
                    )?;
                    Ok(())
                })
                .await?;
            return Err(AppError::Validation(message.into()));
        }
    };
    let stored = Secrets {
        access_token: Some(token.access_token().secret().clone()),
        refresh_token: token.refresh_token().map(|r| r.secret().clone()),
        pkce_verifier: None,
        ..secrets
    };
    let expires = token.expires_in().and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now() + d);
    let sealed = seal(&config, &BANK_TOKENS, id, &stored)?;
    state
        .db(move |conn| {
            crate::db::tx(conn, |conn| {
                let c = models::update_connection(
                    conn,
                    id,
                    &ConnectionChanges {
                        status: Some("connected"),
                        tokens_sealed: Some(Some(&sealed)),
                        token_expires_at: Some(expires),
                        oauth_state: Some(None),
                        last_error: Some(None),
                        updated_at: Some(now()),
                        ..Default::default()
                    },
                )?;
                audit::record(conn, &Actor::system("bank-oauth"), "bank_connection", id, "authorized", None, None)?;
                Ok(c)
            })
        })
        .await
}

/// The resource API of a connection with a usable access: a refreshed token for an
/// official bank (the new refresh token is stored in the same transaction), a live
/// agent session for RPA (logging in again with the sealed credentials when `force`
/// or when there is none).
pub async fn renew_access(
    state: &Services,
    connection: &Connection,
    bank_code: &str,
    force: bool,
) -> Result<ResourceApi, ConnectorError> {
    let config = state.config.clone();
    let id = connection.id;
    // Always the latest row: another sync may have rotated the tokens meanwhile.
    let current = state
        .db(move |conn| Ok(models::connection(conn, id)?))
        .await
        .map_err(|e| ConnectorError::Failed(e.to_string()))?;
    let mut secrets = open_secrets(&config, &BANK_CREDENTIALS, id, current.credentials_sealed.as_deref())?;
    let tokens = open_secrets(&config, &BANK_TOKENS, id, current.tokens_sealed.as_deref())?;
    match current.method.as_str() {
        "official" => {
            let (client, base) = oauth_client(&config, bank_code, &secrets)?;
            let fresh = current.token_expires_at.is_none_or(|t| t > now() + chrono::Duration::seconds(30));
            if let (false, true, Some(access)) = (force, fresh, tokens.access_token.clone()) {
                return Ok(ResourceApi { base, bearer: access });
            }
            let refresh = tokens
                .refresh_token
                .clone()
                .ok_or_else(|| ConnectorError::NeedsRelogin("ngân hàng không cấp refresh token".into()))?;
            let answer =
                client.exchange_refresh_token(&RefreshToken::new(refresh.clone())).request_async(&state.http).await;
            let token = match answer {
                Ok(t) => t,
                Err(oauth2::RequestTokenError::ServerResponse(e)) => {
                    return Err(ConnectorError::NeedsRelogin(format!(
                        "ngân hàng từ chối làm mới phiên: {}",
                        e.error()
                    )));
                }
                Err(e) => {
                    return Err(ConnectorError::RetryLater {
                        after: None,
                        rate_limited: false,
                        message: format!("làm mới phiên thất bại: {e}"),
                    });
                }
            };
            secrets.access_token = Some(token.access_token().secret().clone());
            // Rotation: a bank that sends a new refresh token retires the old one.
            secrets.refresh_token = token.refresh_token().map(|r| r.secret().clone()).or(Some(refresh));
            let expires = token.expires_in().and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now() + d);
            let tokens = Secrets {
                access_token: secrets.access_token.clone(),
                refresh_token: secrets.refresh_token.clone(),
                ..Default::default()
            };
            let sealed = seal(&config, &BANK_TOKENS, id, &tokens).map_err(|e| ConnectorError::Failed(e.to_string()))?;
            state
                .db(move |conn| {
                    models::update_connection(
                        conn,
                        id,
                        &ConnectionChanges {
                            tokens_sealed: Some(Some(&sealed)),
                            token_expires_at: Some(expires),
                            updated_at: Some(now()),
                            ..Default::default()
                        },
                    )?;
                    Ok(())
                })
                .await
                .map_err(|e| ConnectorError::Failed(e.to_string()))?;
            Ok(ResourceApi { base, bearer: tokens.access_token.unwrap_or_default() })
        }
        "rpa" => {
            let agent = config
                .banking
                .rpa_url
                .clone()
                .ok_or_else(|| ConnectorError::Failed("máy chủ chưa cấu hình dịch vụ kết nối".into()))?;
            if let (false, Some(sid)) = (force, current.external_ref.clone()) {
                return Ok(connectors::rpa_api(&agent, &config.banking.rpa_token, &sid));
            }
            let session = connectors::rpa_login(
                &state.http,
                &agent,
                &config.banking.rpa_token,
                bank_code,
                secrets.username.as_deref().unwrap_or_default(),
                secrets.password.as_deref().unwrap_or_default(),
            )
            .await?;
            let sid = session.session_id.clone();
            state
                .db(move |conn| {
                    models::update_connection(
                        conn,
                        id,
                        &ConnectionChanges {
                            external_ref: Some(Some(&sid)),
                            status: Some("connected"),
                            updated_at: Some(now()),
                            ..Default::default()
                        },
                    )?;
                    Ok(())
                })
                .await
                .map_err(|e| ConnectorError::Failed(e.to_string()))?;
            Ok(connectors::rpa_api(&agent, &config.banking.rpa_token, &session.session_id))
        }
        other => Err(ConnectorError::Failed(format!("kết nối {other} không có API"))),
    }
}

/// "Kết nối trước – bankHub sau": the agent logs in with the merchant's bank login;
/// on success the login is kept sealed for later sessions. Returns the connection id.
/// Links a bank by its login through the RPA agent. The form's `once` token is
/// recorded with the new connection, so a repeat of the same render (it logs in again,
/// the bank's session being cheap) goes to the first connection instead of adding one.
/// Returns where to go next: the connection's account choice.
pub async fn link_rpa(
    state: &Services,
    actor: &Actor,
    once: Once,
    business_id: i64,
    bin: &str,
    username: &str,
    password: &str,
) -> AppResult<Done> {
    let config = state.config.clone();
    let b = bin.to_string();
    let bank = state.db(move |conn| bank(conn, &b)).await?;
    let agent = config
        .banking
        .rpa_url
        .clone()
        .ok_or_else(|| AppError::Validation("Máy chủ chưa cấu hình dịch vụ kết nối ngân hàng (RPA).".into()))?;
    let (username, password) = (username.trim().to_string(), password.to_string());
    if username.is_empty() || password.is_empty() || username.len() > 200 || password.len() > 200 {
        return Err(AppError::Validation("Nhập tên đăng nhập và mật khẩu ngân hàng.".into()));
    }
    let session =
        connectors::rpa_login(&state.http, &agent, &config.banking.rpa_token, &bank.code, &username, &password)
            .await
            .map_err(|e| AppError::Validation(format!("Ngân hàng chưa cho đăng nhập: {e}")))?;
    let secrets = Secrets { username: Some(username), password: Some(password), ..Default::default() };
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    let actor = actor.clone();
    state
        .db(move |conn| {
            crate::web::once::record(conn, user_id, &once, |conn| {
                let t = now();
                let c = models::insert_connection(
                    conn,
                    &NewConnection {
                        business_id,
                        bank_bin: &bank.bin,
                        method: "rpa",
                        status: "connected",
                        oauth_state: None,
                        external_ref: Some(&session.session_id),
                        push_key: None,
                        created_by: user_id,
                        created_at: t,
                        updated_at: t,
                    },
                )?;
                let c = store_credentials(conn, &config, c.id, &secrets)?;
                audit::record(
                    conn,
                    &actor,
                    "bank_connection",
                    c.id,
                    "link_rpa",
                    None,
                    Some(serde_json::json!({ "bank": bank.code })),
                )?;
                Ok(Done::new(format!("/app/b/{business_id}/connections/{}/accounts", c.id), ""))
            })
        })
        .await
}

/// The demo account: a connection whose accounts generate transactions.
pub fn link_demo(conn: &mut DbConn, actor: &Actor, business_id: i64) -> AppResult<i64> {
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let t = now();
        let c = models::insert_connection(
            conn,
            &NewConnection {
                business_id,
                bank_bin: DEMO_BIN,
                method: "demo",
                status: "connected",
                oauth_state: None,
                external_ref: None,
                push_key: None,
                created_by: user_id,
                created_at: t,
                updated_at: t,
            },
        )?;
        audit::record(conn, actor, "bank_connection", c.id, "link_demo", None, None)?;
        Ok(c.id)
    })
}

/// The pseudo-bank of demo accounts.
pub const DEMO_BIN: &str = "000000";

/// The accounts a connection can see at its bank, for the "chọn tài khoản con" step.
pub async fn remote_accounts(state: &Services, connection: &Connection) -> AppResult<Vec<RemoteAccount>> {
    if connection.method == "demo" {
        return Ok(connectors::demo_accounts(connection.id));
    }
    let bin = connection.bank_bin.clone();
    let bank = state.db(move |conn| bank(conn, &bin)).await?;
    let api =
        renew_access(state, connection, &bank.code, false).await.map_err(|e| AppError::Validation(e.to_string()))?;
    match api.accounts(&state.http).await {
        Err(ConnectorError::TokenExpired) => {
            let api = renew_access(state, connection, &bank.code, true)
                .await
                .map_err(|e| AppError::Validation(e.to_string()))?;
            api.accounts(&state.http).await.map_err(|e| AppError::Validation(e.to_string()))
        }
        other => other.map_err(|e| AppError::Validation(e.to_string())),
    }
}

/// How far back the first sync reads, as the page offers it.
pub const BACKFILL_DAYS: &[(i64, &str)] =
    &[(0, "Chỉ giao dịch mới"), (7, "7 ngày"), (30, "30 ngày"), (90, "90 ngày"), (180, "180 ngày")];

/// "Hoàn thành": links the chosen sub-accounts and starts their first sync.
pub fn finish_selection(
    conn: &mut DbConn,
    actor: &Actor,
    connection: &Connection,
    available: &[RemoteAccount],
    chosen: &[String],
    days_back: i64,
) -> AppResult<usize> {
    if !BACKFILL_DAYS.iter().any(|(d, _)| *d == days_back) {
        return Err(AppError::Validation("Thời gian đồng bộ giao dịch cũ không hợp lệ.".into()));
    }
    let picked: Vec<&RemoteAccount> = available.iter().filter(|a| chosen.contains(&a.id)).collect();
    if picked.is_empty() || picked.len() != chosen.len() {
        return Err(AppError::Validation("Hãy bật ít nhất một tài khoản trong danh sách.".into()));
    }
    let bank_name = if connection.method == "demo" {
        "Ngân hàng Demo".to_string()
    } else {
        bank(conn, &connection.bank_bin)?.short_name
    };
    let bank_code =
        if connection.method == "demo" { "DEMO".to_string() } else { bank(conn, &connection.bank_bin)?.code };
    crate::db::tx(conn, |conn| {
        let t = now();
        let linked = models::accounts_of_connection(conn, connection.id)?;
        let mut added = 0;
        for a in picked {
            if linked.iter().any(|l| l.external_id == a.id) {
                continue;
            }
            // Linked before through a connection that broke: the same account again.
            if connection.method != "demo"
                && let Some(old) =
                    models::linked_by_number(conn, connection.business_id, &connection.bank_bin, &a.number)?
            {
                models::reattach(conn, old.id, connection.id, &a.id, t)?;
                audit::record(
                    conn,
                    actor,
                    "bank_account",
                    old.id,
                    "reconnect",
                    None,
                    Some(serde_json::json!({ "connection_id": connection.id })),
                )?;
                sync::enqueue_sync(conn, old.id, &format!("reconnected:{}", connection.id))?;
                added += 1;
                continue;
            }
            let account = crate::business::service::link_account(
                conn,
                actor,
                &NewBankAccount {
                    business_id: connection.business_id,
                    bank_code: &bank_code,
                    bank_name: &bank_name,
                    account_number: &a.number,
                    account_name: &a.name,
                    method: &connection.method,
                    connect_status: "connected",
                    created_at: t,
                    connection_id: Some(connection.id),
                    bank_bin: &connection.bank_bin,
                    external_id: &a.id,
                    balance: a.balance,
                    sync_from: Some(t - chrono::Duration::days(days_back)),
                    next_sync_at: Some(t),
                },
            )?;
            sync::enqueue_sync(conn, account.id, "linked")?;
            added += 1;
        }
        Ok(added)
    })
}

/// Everything a sync of one account needs.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub account: BankAccount,
    pub connection: Connection,
    pub bank_code: String,
    pub interval: chrono::Duration,
}

/// The account to sync, or None when it should not be (removed, push-only, business
/// deleted, needing a new login).
pub fn sync_target(conn: &mut DbConn, account_id: i64) -> AppResult<Option<SyncTarget>> {
    let account = match models::account(conn, account_id) {
        Ok(a) => a,
        Err(diesel::result::Error::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(connection_id) = account.connection_id else { return Ok(None) };
    if account.removed_at.is_some() || account.connect_status == "relogin" || account.method == "push" {
        return Ok(None);
    }
    let business = match crate::business::models::business(conn, account.business_id) {
        Ok(b) => b,
        Err(diesel::result::Error::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let connection = models::connection(conn, connection_id)?;
    let bank_code = catalogue::by_bin(conn, &connection.bank_bin)?.map(|b| b.code).unwrap_or_default();
    let status = crate::business::service::plan_status(conn, &business)?;
    let interval = chrono::Duration::minutes(status.plan.sync_interval_minutes.max(1));
    Ok(Some(SyncTarget { account, connection, bank_code, interval }))
}

/// Broken credentials: the account (and its connection) need a new login; the owners
/// are mailed once, when it happens.
pub fn needs_relogin(conn: &mut DbConn, config: &Config, account: &BankAccount, message: &str) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let current = models::account(conn, account.id)?;
        models::update_account(
            conn,
            account.id,
            &models::AccountSync {
                connect_status: Some("relogin"),
                last_error: Some(Some(message)),
                ..Default::default()
            },
        )?;
        if let Some(cid) = account.connection_id {
            models::update_connection(
                conn,
                cid,
                &ConnectionChanges {
                    status: Some("relogin"),
                    last_error: Some(Some(message)),
                    updated_at: Some(now()),
                    ..Default::default()
                },
            )?;
        }
        if current.connect_status != "relogin" {
            let owners = crate::business::models::owner_emails(conn, account.business_id)?;
            if !owners.is_empty() {
                let text = format!(
                    "Tài khoản {} {} cần được kết nối lại: {}.\n\nGiao dịch đã đồng bộ vẫn được giữ nguyên. Vào hubgate, mục \
                     Kết nối ngân hàng, để kết nối lại:\n{}/app/b/{}/accounts\n\nhubgate",
                    account.bank_name, account.account_number, message, config.base_url, account.business_id
                );
                let subject = format!("Cần kết nối lại tài khoản {} {}", account.bank_name, account.account_number);
                queue_mail(
                    conn,
                    &config.outbound,
                    &Actor::system("bank-sync"),
                    &OutgoingMail::simple(owners, subject, text),
                )?;
            }
            audit::record(
                conn,
                &Actor::system("bank-sync"),
                "bank_account",
                account.id,
                "needs_relogin",
                None,
                Some(serde_json::json!({ "message": message })),
            )?;
        }
        Ok(())
    })
}

/// "Kiểm tra giao dịch mới": a sync now, at most once a minute per account (the plan's
/// limit on manual checks). False when one was already asked for this minute.
pub fn request_sync(conn: &mut DbConn, actor: &Actor, business_id: i64, account_id: i64) -> AppResult<bool> {
    let account = crate::business::models::linked_account(conn, business_id, account_id)?;
    if account.method == "push" {
        return Err(AppError::Validation(
            "Tài khoản này nhận giao dịch do ngân hàng gửi đến; không cần kiểm tra.".into(),
        ));
    }
    let minute = now().and_utc().timestamp() / 60;
    crate::db::tx(conn, |conn| {
        let queued = sync::enqueue_sync(conn, account.id, &format!("manual:{minute}"))?;
        if queued {
            audit::record(conn, actor, "bank_account", account.id, "sync_now", None, None)?;
        }
        Ok(queued)
    })
}

/// Deletes a transaction: the row stays as a tombstone so no re-sync brings it back.
pub fn delete_transaction(conn: &mut DbConn, actor: &Actor, business_id: i64, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let tx = models::transaction(conn, business_id, id)?;
        if !models::tombstone(conn, tx.id, now())? {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            actor,
            "transaction",
            tx.id,
            "delete",
            Some(
                serde_json::json!({ "bank_tx_id": tx.bank_tx_id, "amount": tx.amount, "description": tx.description }),
            ),
            None,
        )?;
        Ok(())
    })
}

// ---- push hooks

/// A push source: the bank or aggregator posts to `/bank-hooks/{key}`, signed with the
/// secret shown once here. Returns (key, secret).
pub fn create_push(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    business_id: i64,
    bin: &str,
    number: &str,
    holder: &str,
) -> AppResult<(String, String)> {
    let bank = bank(conn, bin)?;
    let number = number.trim();
    if number.is_empty() || number.len() > 32 || !number.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(AppError::Validation("Số tài khoản chỉ gồm chữ và số (tối đa 32 ký tự).".into()));
    }
    let holder: String = holder.trim().chars().take(120).collect();
    let key = new_link_token()[..24].to_string();
    let secret = new_link_token();
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let t = now();
        let c = models::insert_connection(
            conn,
            &NewConnection {
                business_id,
                bank_bin: &bank.bin,
                method: "push",
                status: "connected",
                oauth_state: None,
                external_ref: None,
                push_key: Some(&key),
                created_by: user_id,
                created_at: t,
                updated_at: t,
            },
        )?;
        let c = store_credentials(
            conn,
            config,
            c.id,
            &Secrets { push_secret: Some(secret.clone()), ..Default::default() },
        )?;
        crate::business::service::link_account(
            conn,
            actor,
            &NewBankAccount {
                business_id,
                bank_code: &bank.code,
                bank_name: &bank.short_name,
                account_number: number,
                account_name: &holder,
                method: "push",
                connect_status: "connected",
                created_at: t,
                connection_id: Some(c.id),
                bank_bin: &bank.bin,
                external_id: number,
                balance: None,
                sync_from: None,
                next_sync_at: None,
            },
        )?;
        audit::record(
            conn,
            actor,
            "bank_connection",
            c.id,
            "create_push",
            None,
            Some(serde_json::json!({ "bank": bank.code })),
        )?;
        Ok((key.clone(), secret.clone()))
    })
}

/// Our own push format.
#[derive(Deserialize)]
struct PushBody {
    transactions: Vec<PushTx>,
}

#[derive(Deserialize)]
struct PushTx {
    account_number: String,
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
}

/// SePay's webhook payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SePay {
    id: i64,
    #[serde(default)]
    gateway: String,
    transaction_date: String,
    account_number: String,
    #[serde(default)]
    content: String,
    transfer_type: String,
    transfer_amount: i64,
    #[serde(default)]
    accumulated: Option<i64>,
    #[serde(default)]
    reference_code: Option<String>,
    #[serde(default)]
    sub_account: Option<String>,
}

fn push_error(msg: &str) -> AppError {
    AppError::Validation(msg.to_string())
}

/// Checks `X-Hubgate-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body) or
/// SePay's `Authorization: Apikey <secret>`.
pub fn push_authentic(secret: &str, signature: Option<&str>, authorization: Option<&str>, body: &[u8]) -> bool {
    if let Some(sig) = signature.and_then(|s| s.trim().strip_prefix("sha256="))
        && let Ok(expected) = hex::decode(sig)
    {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(body);
        return mac.verify_slice(&expected).is_ok();
    }
    if let Some(key) = authorization.and_then(|a| a.trim().strip_prefix("Apikey ")) {
        return subtle::ConstantTimeEq::ct_eq(key.trim().as_bytes(), secret.as_bytes()).into();
    }
    false
}

/// Parses a pushed body (ours or SePay's) into (account number, transaction) pairs.
pub fn parse_push(body: &[u8]) -> AppResult<Vec<(String, IncomingTx)>> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| push_error(&format!("body is not JSON: {e}")))?;
    let blank = |bank_tx_id: String, amount: i64, occurred_at: NaiveDateTime| IncomingTx {
        bank_tx_id,
        amount,
        description: String::new(),
        balance: None,
        occurred_at,
        pending: false,
        counter_account: String::new(),
        counter_name: String::new(),
        counter_bank_id: String::new(),
        counter_bank_name: String::new(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: "push".into(),
        replaces: None,
    };
    if value.get("transactions").is_some() {
        let parsed: PushBody = serde_json::from_value(value).map_err(|e| push_error(&format!("invalid body: {e}")))?;
        return parsed
            .transactions
            .into_iter()
            .map(|t| {
                let at =
                    connectors::parse_bank_time(&t.booking_time).ok_or_else(|| push_error("invalid booking_time"))?;
                if t.id.trim().is_empty() {
                    return Err(push_error("a transaction has no id"));
                }
                let mut tx = blank(t.id, t.amount, at);
                tx.description = t.description;
                tx.balance = t.balance;
                tx.counter_account = t.counter_account;
                tx.counter_name = t.counter_name;
                Ok((t.account_number, tx))
            })
            .collect();
    }
    let s: SePay =
        serde_json::from_value(value).map_err(|e| push_error(&format!("neither our format nor SePay's: {e}")))?;
    let at = connectors::parse_bank_time(&s.transaction_date).ok_or_else(|| push_error("invalid transactionDate"))?;
    let amount = match s.transfer_type.as_str() {
        "in" => s.transfer_amount.abs(),
        "out" => -s.transfer_amount.abs(),
        _ => return Err(push_error("transferType must be in or out")),
    };
    // SePay's own id is unique per transaction; the bank reference can repeat.
    let mut tx = blank(format!("sepay-{}", s.id), amount, at);
    tx.description = s.content;
    tx.balance = s.accumulated;
    tx.counter_bank_name = s.gateway;
    tx.virtual_account = s.sub_account.unwrap_or_default();
    tx.payment_channel = s.reference_code.map(|r| format!("sepay:{r}")).unwrap_or_else(|| "sepay".into());
    Ok(vec![(s.account_number, tx)])
}

/// A push arrived for `key`: authenticate it, store its transactions. Unknown keys and
/// bad signatures are the same 401 to the sender.
pub fn receive_push(
    conn: &mut DbConn,
    config: &Config,
    key: &str,
    signature: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
) -> AppResult<Applied> {
    let connection = models::connection_by_push_key(conn, key)?.ok_or(AppError::NotFound)?;
    let secrets = open_secrets(config, &BANK_CREDENTIALS, connection.id, connection.credentials_sealed.as_deref())
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    if !push_authentic(secrets.push_secret.as_deref().unwrap_or_default(), signature, authorization, body) {
        return Err(AppError::Forbidden("invalid signature".into()));
    }
    let items = parse_push(body)?;
    let accounts = models::accounts_of_connection(conn, connection.id)?;
    let mut total = Applied::default();
    for (number, tx) in items {
        let account = accounts
            .iter()
            .find(|a| a.account_number == number.trim())
            .ok_or_else(|| push_error(&format!("unknown account {number}")))?;
        let got = sync::apply_page(conn, account, &[tx], "push")?;
        total.new_ids.extend(got.new_ids);
        total.known += got.known;
        total.replaced += got.replaced;
    }
    Ok(total)
}

// ---- continue on the phone

/// A one-time link (15 minutes) that opens the same linking step on a phone.
pub fn create_handoff(
    conn: &mut DbConn,
    config: &Config,
    business_id: i64,
    user_id: i64,
    bin: &str,
) -> AppResult<String> {
    let token = new_link_token();
    let t = now();
    models::insert_handoff(
        conn,
        business_id,
        user_id,
        bin,
        &token_hash(config, &token),
        t + chrono::Duration::minutes(15),
        t,
    )?;
    Ok(format!("{}/link?token={token}", config.base_url))
}

pub fn use_handoff(conn: &mut DbConn, config: &Config, user_id: i64, token: &str) -> AppResult<Option<(i64, String)>> {
    let t = now();
    crate::db::tx(conn, |conn| {
        let found = presented_link(config, token).find(
            conn,
            |conn, h| models::handoff_by_hash(conn, h, user_id, t),
            |conn, row, old, new| models::rehash_handoff(conn, row.0, old, new),
        )?;
        let Some((id, business_id, bin)) = found else { return Ok(None) };
        Ok(models::use_handoff(conn, id, t)?.then_some((business_id, bin)))
    })
}

/// A server-side SVG QR code of a URL.
pub fn qr_svg(url: &str) -> AppResult<String> {
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| AppError::internal(anyhow::anyhow!("qr: {e}")))?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build())
}
