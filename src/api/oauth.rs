//! hubgate as an OAuth 2 authorization server for third-party apps (RFC 6749's
//! authorization code grant with PKCE S256 always required, RFC 7636; refresh tokens
//! rotated on each use; revocation, RFC 7009). A developer registers an app; the owner
//! or a manager of a business consents, choosing the business and seeing the scopes; the
//! app's tokens then reach that business through the same API as a key, limited to the
//! scopes granted. Secrets, codes and tokens are stored as keyed hashes only, like keys.
//!
//! Written here rather than with oxide-auth: its registrar and issuer are in-memory or
//! synchronous traits around its own request types, while every state here must live in
//! the database shared by all nodes, behind our session, CSRF and audit.

use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::keys::{self, Caller, Client};
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::schema::{oauth_apps, oauth_codes, oauth_grants, oauth_tokens, users};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};

/// The scopes an app may ask for, with what the consent screen says of each.
pub const SCOPES: &[(&str, &str)] = &[
    ("read", "Xem tài khoản ngân hàng, số dư và giao dịch"),
    ("sync", "Yêu cầu ngân hàng đồng bộ giao dịch ngay"),
    ("webhooks", "Tạo, sửa và xóa webhook nhận giao dịch mới"),
];

/// How an OAuth access token starts, so the API tells it from a v1 token at a glance.
pub const ACCESS_PREFIX: &str = "hgat_";
pub const CODE_MINUTES: i64 = 10;
pub const ACCESS_SECONDS: i64 = 3600;
pub const REFRESH_DAYS: i64 = 90;
const MAX_REDIRECTS: usize = 5;

/// A scope as a bit, so a caller's grant is a small set.
pub fn scope_bit(name: &str) -> Option<u8> {
    SCOPES.iter().position(|(s, _)| *s == name).map(|i| 1 << i)
}

/// Every scope: what an API key may do.
pub const ALL_SCOPES: u8 = 0b111;

/// `read sync` → the known scopes in order; an unknown one is an error (RFC 6749
/// `invalid_scope`). Nothing asked means `read`.
pub fn parse_scopes(raw: &str) -> Result<Vec<&'static str>, String> {
    let mut bits = 0u8;
    for word in raw.split([' ', '+']).filter(|w| !w.is_empty()) {
        bits |=
            scope_bit(word).ok_or_else(|| format!("unknown scope `{}`", word.chars().take(40).collect::<String>()))?;
    }
    if bits == 0 {
        bits = 1;
    }
    Ok(SCOPES.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, (s, _))| *s).collect())
}

fn bits_of(scopes: &str) -> u8 {
    scopes.split(' ').filter_map(scope_bit).fold(0, |a, b| a | b)
}

#[derive(Queryable, Debug, Clone)]
pub struct App {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub website: String,
    pub client_id: String,
    pub secret_hash: String,
    pub redirect_uris: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub deleted_at: Option<NaiveDateTime>,
}

impl App {
    pub fn redirects(&self) -> Vec<&str> {
        self.redirect_uris.lines().filter(|l| !l.is_empty()).collect()
    }

    pub fn is_confidential(&self) -> bool {
        !self.secret_hash.is_empty()
    }

    /// The redirect URI a request names, only if registered exactly; none named is the
    /// only one registered.
    pub fn redirect_for(&self, asked: Option<&str>) -> Option<String> {
        let list = self.redirects();
        match asked.filter(|a| !a.is_empty()) {
            Some(a) => list.into_iter().find(|r| *r == a).map(str::to_string),
            None if list.len() == 1 => Some(list[0].to_string()),
            None => None,
        }
    }
}

/// Redirect URIs, one per line: https, or http on a loopback host for apps on the
/// user's own machine (RFC 8252); no fragment.
pub fn parse_redirects(raw: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || format!("Địa chỉ chuyển hướng không hợp lệ: {}", line.chars().take(80).collect::<String>());
        // URL parsers drop tabs and newlines inside a URL: what is stored and matched
        // exactly must be what the browser is sent to.
        if line.len() > 2000 || line.chars().any(char::is_control) {
            return Err(bad());
        }
        let u = reqwest::Url::parse(line).map_err(|_| bad())?;
        let loopback = matches!(u.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
        if u.fragment().is_some() || !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
            return Err(format!("{} (chỉ https, hoặc http tới 127.0.0.1/localhost; không có #)", bad()));
        }
        if !out.contains(&line.to_string()) {
            out.push(line.to_string());
        }
    }
    if out.is_empty() {
        return Err("Nhập ít nhất một địa chỉ chuyển hướng (redirect URI).".into());
    }
    if out.len() > MAX_REDIRECTS {
        return Err(format!("Tối đa {MAX_REDIRECTS} địa chỉ chuyển hướng."));
    }
    Ok(out)
}

pub fn apps_of(conn: &mut DbConn, owner_id: i64) -> QueryResult<Vec<App>> {
    oauth_apps::table
        .filter(oauth_apps::owner_id.eq(owner_id))
        .filter(oauth_apps::deleted_at.is_null())
        .order(oauth_apps::id.desc())
        .select(oauth_apps::all_columns)
        .load(conn)
}

pub fn app_by_client_id(conn: &mut DbConn, client_id: &str) -> QueryResult<Option<App>> {
    if client_id.is_empty() || client_id.len() > 100 {
        return Ok(None);
    }
    oauth_apps::table
        .filter(oauth_apps::client_id.eq(client_id))
        .filter(oauth_apps::deleted_at.is_null())
        .select(oauth_apps::all_columns)
        .first(conn)
        .optional()
}

pub struct NewApp {
    pub name: String,
    pub website: String,
    pub redirect_uris: String,
    pub confidential: bool,
}

/// Registers an app; returns it with its client secret (shown once) when confidential.
pub fn create_app(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    input: &NewApp,
) -> AppResult<(App, Option<String>)> {
    let owner = actor.user_id.ok_or_else(AppError::forbidden)?;
    let name: String = input.name.trim().chars().take(80).collect();
    if name.is_empty() {
        return Err(AppError::Validation("Đặt tên cho ứng dụng; người dùng sẽ thấy tên này khi cấp quyền.".into()));
    }
    let website = input.website.trim().to_string();
    if !website.is_empty()
        && reqwest::Url::parse(&website).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
    {
        return Err(AppError::Validation("Website phải là địa chỉ http(s) đầy đủ.".into()));
    }
    let redirects = parse_redirects(&input.redirect_uris).map_err(AppError::Validation)?;
    let client_id = format!("hgapp_{}", keys::random(24));
    let secret = input.confidential.then(|| format!("hgsec_{}", keys::random(40)));
    crate::db::tx(conn, |conn| {
        let live: i64 = oauth_apps::table
            .filter(oauth_apps::owner_id.eq(owner))
            .filter(oauth_apps::deleted_at.is_null())
            .count()
            .get_result(conn)?;
        if live >= 20 {
            return Err(AppError::Validation("Mỗi tài khoản đăng ký tối đa 20 ứng dụng.".into()));
        }
        let app: App = diesel::insert_into(oauth_apps::table)
            .values((
                oauth_apps::owner_id.eq(owner),
                oauth_apps::name.eq(&name),
                oauth_apps::website.eq(&website),
                oauth_apps::client_id.eq(&client_id),
                oauth_apps::secret_hash.eq(secret.as_deref().map(|s| keys::hash(config, s)).unwrap_or_default()),
                oauth_apps::redirect_uris.eq(redirects.join("\n")),
                oauth_apps::created_at.eq(now()),
            ))
            .returning(oauth_apps::all_columns)
            .get_result(conn)?;
        audit::record(
            conn,
            actor,
            "oauth_app",
            app.id,
            "create",
            None,
            Some(serde_json::json!({ "name": name, "client_id": client_id, "redirect_uris": redirects })),
        )?;
        Ok((app, secret))
    })
}

/// Deletes an app of its owner: its grants and tokens stop working at once.
pub fn delete_app(conn: &mut DbConn, actor: &Actor, app_id: i64) -> AppResult<()> {
    let owner = actor.user_id.ok_or_else(AppError::forbidden)?;
    crate::db::tx(conn, |conn| {
        let t = now();
        let n = diesel::update(
            oauth_apps::table
                .filter(oauth_apps::id.eq(app_id))
                .filter(oauth_apps::owner_id.eq(owner))
                .filter(oauth_apps::deleted_at.is_null()),
        )
        .set(oauth_apps::deleted_at.eq(t))
        .execute(conn)?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        let grants: Vec<i64> = oauth_grants::table
            .filter(oauth_grants::app_id.eq(app_id))
            .filter(oauth_grants::revoked_at.is_null())
            .select(oauth_grants::id)
            .load(conn)?;
        for g in grants {
            end_grant(conn, g, t)?;
        }
        audit::record(conn, actor, "oauth_app", app_id, "delete", None, None)?;
        Ok(())
    })
}

fn end_grant(conn: &mut DbConn, grant_id: i64, t: NaiveDateTime) -> QueryResult<()> {
    diesel::update(oauth_grants::table.find(grant_id))
        .set((oauth_grants::revoked_at.eq(t), oauth_grants::refresh_hash.eq(None::<String>)))
        .execute(conn)?;
    diesel::delete(oauth_tokens::table.filter(oauth_tokens::grant_id.eq(grant_id))).execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- consent → code

/// The consent's result: a code for the app's redirect URI.
#[allow(clippy::too_many_arguments)]
pub fn issue_code(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    app: &App,
    business_id: i64,
    redirect_uri: &str,
    scopes: &[&str],
    challenge: &str,
) -> AppResult<String> {
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    let code = format!("hgcode_{}", keys::random(40));
    let t = now();
    crate::db::tx(conn, |conn| {
        let id: i64 = diesel::insert_into(oauth_codes::table)
            .values((
                oauth_codes::code_hash.eq(keys::hash(config, &code)),
                oauth_codes::app_id.eq(app.id),
                oauth_codes::business_id.eq(business_id),
                oauth_codes::user_id.eq(user_id),
                oauth_codes::redirect_uri.eq(redirect_uri),
                oauth_codes::scopes.eq(scopes.join(" ")),
                oauth_codes::code_challenge.eq(challenge),
                oauth_codes::created_at.eq(t),
                oauth_codes::expires_at.eq(t + chrono::Duration::minutes(CODE_MINUTES)),
            ))
            .returning(oauth_codes::id)
            .get_result(conn)?;
        // Old codes are of no use: sweep them with each new one.
        diesel::delete(oauth_codes::table.filter(oauth_codes::expires_at.lt(t - chrono::Duration::days(1))))
            .execute(conn)?;
        audit::record(
            conn,
            actor,
            "oauth_consent",
            id,
            "allow",
            None,
            Some(serde_json::json!({ "app": app.client_id, "business_id": business_id, "scopes": scopes })),
        )?;
        Ok(code)
    })
}

/// RFC 7636's S256: BASE64URL(SHA256(verifier)) without padding equals the challenge.
pub fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// A challenge as RFC 7636 allows it: 43 characters of base64url (S256's output).
pub fn challenge_ok(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// ---------------------------------------------------------------- the token endpoint

/// RFC 6749 §5.2's errors.
#[derive(Debug, PartialEq)]
pub enum TokenError {
    InvalidRequest(String),
    InvalidClient,
    InvalidGrant(String),
    UnsupportedGrantType,
    InvalidScope(String),
    Internal,
}

impl From<diesel::result::Error> for TokenError {
    fn from(e: diesel::result::Error) -> Self {
        tracing::error!(error = %e, "OAuth token request failed");
        TokenError::Internal
    }
}

impl From<AppError> for TokenError {
    fn from(e: AppError) -> Self {
        tracing::error!(error = %e, "OAuth token request failed");
        TokenError::Internal
    }
}

#[derive(Debug, serde::Serialize)]
pub struct TokenSet {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub scope: String,
}

/// The app a token request comes from: its client id, and its secret when it has one.
pub fn client(conn: &mut DbConn, config: &Config, client_id: &str, secret: Option<&str>) -> Result<App, TokenError> {
    let app = app_by_client_id(conn, client_id)?.ok_or(TokenError::InvalidClient)?;
    let secret_ok = match (app.is_confidential(), secret.filter(|s| !s.is_empty())) {
        (false, None) => true,
        (true, Some(s)) => keys::presented(config, s)
            .find(
                conn,
                |_, h| {
                    let same: bool = subtle::ConstantTimeEq::ct_eq(h.as_bytes(), app.secret_hash.as_bytes()).into();
                    Ok::<_, diesel::result::Error>(same.then_some(()))
                },
                |conn, _, old, new| crate::rehash!(conn, oauth_apps, secret_hash, app.id, old, new),
            )?
            .is_some(),
        _ => false,
    };
    if secret_ok { Ok(app) } else { Err(TokenError::InvalidClient) }
}

fn new_tokens(conn: &mut DbConn, config: &Config, grant_id: i64, scopes: &str) -> QueryResult<TokenSet> {
    let access = format!("{ACCESS_PREFIX}{}", keys::random(40));
    let refresh = format!("hgrt_{}", keys::random(48));
    let t = now();
    diesel::insert_into(oauth_tokens::table)
        .values((
            oauth_tokens::grant_id.eq(grant_id),
            oauth_tokens::token_hash.eq(keys::hash(config, &access)),
            oauth_tokens::created_at.eq(t),
            oauth_tokens::expires_at.eq(t + chrono::Duration::seconds(ACCESS_SECONDS)),
        ))
        .execute(conn)?;
    diesel::delete(
        oauth_tokens::table.filter(oauth_tokens::grant_id.eq(grant_id)).filter(oauth_tokens::expires_at.lt(t)),
    )
    .execute(conn)?;
    diesel::update(oauth_grants::table.find(grant_id))
        .set((
            oauth_grants::refresh_hash.eq(keys::hash(config, &refresh)),
            oauth_grants::refresh_expires_at.eq(t + chrono::Duration::days(REFRESH_DAYS)),
        ))
        .execute(conn)?;
    Ok(TokenSet {
        access_token: access,
        token_type: "Bearer",
        expires_in: ACCESS_SECONDS,
        refresh_token: refresh,
        scope: scopes.to_string(),
    })
}

/// `grant_type=authorization_code`: a code used once, by the app it was given to, with
/// its redirect URI and the PKCE verifier. A code used twice revokes what it gave.
pub fn exchange_code(
    conn: &mut DbConn,
    config: &Config,
    app: &App,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
) -> Result<TokenSet, TokenError> {
    let t = now();
    crate::db::tx(conn, |conn| {
        type Row = (i64, i64, i64, i64, String, String, String, NaiveDateTime, Option<NaiveDateTime>, Option<i64>);
        let row: Option<Row> = keys::presented(config, code).find(
            conn,
            |conn, h| {
                oauth_codes::table
                    .filter(oauth_codes::code_hash.eq(h))
                    .select((
                        oauth_codes::id,
                        oauth_codes::app_id,
                        oauth_codes::business_id,
                        oauth_codes::user_id,
                        oauth_codes::redirect_uri,
                        oauth_codes::scopes,
                        oauth_codes::code_challenge,
                        oauth_codes::expires_at,
                        oauth_codes::used_at,
                        oauth_codes::grant_id,
                    ))
                    .first(conn)
                    .optional()
            },
            |conn, row: &Row, old, new| crate::rehash!(conn, oauth_codes, code_hash, row.0, old, new),
        )?;
        let Some((id, app_id, business_id, user_id, redirect, scopes, challenge, expires, used, grant)) = row else {
            return Ok(Err(TokenError::InvalidGrant("unknown code".into())));
        };
        if app_id != app.id {
            return Ok(Err(TokenError::InvalidGrant("the code was issued to another client".into())));
        }
        if used.is_some() {
            if let Some(g) = grant {
                end_grant(conn, g, t)?;
            }
            return Ok(Err(TokenError::InvalidGrant("the code was already used; its tokens are revoked".into())));
        }
        if expires < t {
            return Ok(Err(TokenError::InvalidGrant("the code expired".into())));
        }
        if redirect_uri.is_some_and(|r| r != redirect) {
            return Ok(Err(TokenError::InvalidGrant("redirect_uri differs from the authorization request".into())));
        }
        if !pkce_ok(verifier, &challenge) {
            return Ok(Err(TokenError::InvalidGrant("code_verifier does not match the code_challenge".into())));
        }
        // Claimed by a conditional update: two racing exchanges, one wins.
        let claimed = diesel::update(oauth_codes::table.find(id).filter(oauth_codes::used_at.is_null()))
            .set(oauth_codes::used_at.eq(t))
            .execute(conn)?;
        if claimed == 0 {
            return Ok(Err(TokenError::InvalidGrant("the code was already used".into())));
        }
        let grant_id: i64 = diesel::insert_into(oauth_grants::table)
            .values((
                oauth_grants::app_id.eq(app.id),
                oauth_grants::business_id.eq(business_id),
                oauth_grants::user_id.eq(user_id),
                oauth_grants::scopes.eq(&scopes),
                oauth_grants::created_at.eq(t),
            ))
            .returning(oauth_grants::id)
            .get_result(conn)?;
        diesel::update(oauth_codes::table.find(id)).set(oauth_codes::grant_id.eq(grant_id)).execute(conn)?;
        audit::record(
            conn,
            &Actor::system(&format!("oauth:{}", app.client_id)),
            "oauth_grant",
            grant_id,
            "create",
            None,
            Some(serde_json::json!({ "business_id": business_id, "user_id": user_id, "scopes": scopes })),
        )?;
        Ok(Ok(new_tokens(conn, config, grant_id, &scopes)?))
    })
    .map_err(|e: AppError| TokenError::from(e))?
}

/// `grant_type=refresh_token`: a new pair, the old refresh token spent. Presenting a
/// spent one means it leaked: the grant is revoked. `scope` may only narrow.
pub fn refresh(
    conn: &mut DbConn,
    config: &Config,
    app: &App,
    refresh_token: &str,
    scope: Option<&str>,
) -> Result<TokenSet, TokenError> {
    let presented = keys::presented(config, refresh_token);
    // What the grant holds once the lookup below has found it (upgraded if need be).
    let h = presented.current();
    let t = now();
    crate::db::tx(conn, |conn| {
        let live: Option<(i64, i64, String, Option<NaiveDateTime>)> = presented.find(
            conn,
            |conn, h| {
                oauth_grants::table
                    .filter(oauth_grants::refresh_hash.eq(h))
                    .filter(oauth_grants::revoked_at.is_null())
                    .select((
                        oauth_grants::id,
                        oauth_grants::app_id,
                        oauth_grants::scopes,
                        oauth_grants::refresh_expires_at,
                    ))
                    .first(conn)
                    .optional()
            },
            |conn, row: &(i64, i64, String, Option<NaiveDateTime>), old, new| {
                crate::rehash!(conn, oauth_grants, refresh_hash, row.0, old, new)
            },
        )?;
        let Some((grant_id, app_id, scopes, expires)) = live else {
            // The grant ends here, so its stored hash need not be upgraded.
            let spent: Option<i64> = presented.find(
                conn,
                |conn, h| {
                    oauth_grants::table
                        .filter(oauth_grants::previous_refresh_hash.eq(h))
                        .filter(oauth_grants::revoked_at.is_null())
                        .select(oauth_grants::id)
                        .first(conn)
                        .optional()
                },
                |_, _, _, _| Ok(()),
            )?;
            if let Some(g) = spent {
                end_grant(conn, g, t)?;
                audit::record(conn, &Actor::system("oauth"), "oauth_grant", g, "revoke_reused_refresh", None, None)?;
            }
            return Ok(Err(TokenError::InvalidGrant("unknown or spent refresh token".into())));
        };
        if app_id != app.id {
            return Ok(Err(TokenError::InvalidGrant("the refresh token belongs to another client".into())));
        }
        if expires.is_some_and(|e| e < t) {
            return Ok(Err(TokenError::InvalidGrant("the refresh token expired".into())));
        }
        let granted = bits_of(&scopes);
        let scopes = match scope.filter(|s| !s.trim().is_empty()) {
            None => scopes,
            Some(asked) => {
                let asked = match parse_scopes(asked) {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(TokenError::InvalidScope(e))),
                };
                if asked.iter().any(|s| scope_bit(s).is_some_and(|b| granted & b == 0)) {
                    return Ok(Err(TokenError::InvalidScope("a refresh may not widen the grant".into())));
                }
                asked.join(" ")
            }
        };
        // Spend the token by a conditional update: of two racing refreshes one wins.
        let n = diesel::update(oauth_grants::table.find(grant_id).filter(oauth_grants::refresh_hash.eq(h)))
            .set((oauth_grants::previous_refresh_hash.eq(h), oauth_grants::scopes.eq(&scopes)))
            .execute(conn)?;
        if n == 0 {
            return Ok(Err(TokenError::InvalidGrant("the refresh token was just used".into())));
        }
        Ok(Ok(new_tokens(conn, config, grant_id, &scopes)?))
    })
    .map_err(|e: AppError| TokenError::from(e))?
}

/// RFC 7009: the app's access or refresh token stops working. An unknown token is not an
/// error (the answer must not tell).
pub fn revoke_token(conn: &mut DbConn, config: &Config, app: &App, token: &str) -> Result<(), TokenError> {
    let presented = keys::presented(config, token);
    let t = now();
    // What is found here ends at once: its stored hash need not be upgraded.
    let by_refresh: Option<i64> = presented.find(
        conn,
        |conn, h| {
            oauth_grants::table
                .filter(oauth_grants::refresh_hash.eq(h))
                .filter(oauth_grants::app_id.eq(app.id))
                .select(oauth_grants::id)
                .first(conn)
                .optional()
        },
        |_, _, _, _| Ok(()),
    )?;
    if let Some(g) = by_refresh {
        end_grant(conn, g, t)?;
        return Ok(());
    }
    let by_access: Option<i64> = presented.find(
        conn,
        |conn, h| {
            oauth_tokens::table
                .inner_join(oauth_grants::table)
                .filter(oauth_tokens::token_hash.eq(h))
                .filter(oauth_grants::app_id.eq(app.id))
                .select(oauth_tokens::id)
                .first(conn)
                .optional()
        },
        |_, _, _, _| Ok(()),
    )?;
    if let Some(id) = by_access {
        diesel::delete(oauth_tokens::table.find(id)).execute(conn)?;
    }
    Ok(())
}

/// The caller of a live access token of a live grant of a live app.
pub fn by_access_token(conn: &mut DbConn, config: &Config, token: &str) -> QueryResult<Option<Caller>> {
    type Row = (i64, i64, i64, i64, i64, String, Option<NaiveDateTime>);
    let found: Option<Row> = keys::presented(config, token.trim()).find(
        conn,
        |conn, h| {
            oauth_tokens::table
                .inner_join(oauth_grants::table.inner_join(oauth_apps::table))
                .filter(oauth_tokens::token_hash.eq(h))
                .filter(oauth_tokens::expires_at.gt(now()))
                .filter(oauth_grants::revoked_at.is_null())
                .filter(oauth_apps::deleted_at.is_null())
                .select((
                    oauth_tokens::id,
                    oauth_grants::id,
                    oauth_grants::app_id,
                    oauth_grants::business_id,
                    oauth_grants::user_id,
                    oauth_grants::scopes,
                    oauth_grants::last_used_at,
                ))
                .first(conn)
                .optional()
        },
        |conn, row: &Row, old, new| crate::rehash!(conn, oauth_tokens, token_hash, row.0, old, new),
    )?;
    let Some((_, grant_id, app_id, business_id, user_id, scopes, last)) = found else { return Ok(None) };
    let t = now();
    if last.is_none_or(|l| t - l > chrono::Duration::minutes(1)) {
        diesel::update(oauth_grants::table.find(grant_id)).set(oauth_grants::last_used_at.eq(t)).execute(conn)?;
    }
    Ok(Some(Caller { client: Client::App(app_id), business_id, user_id, scopes: bits_of(&scopes) }))
}

// ---------------------------------------------------------------- the business's view

/// A live grant as the business's API page lists it.
pub struct GrantView {
    pub id: i64,
    pub app_name: String,
    pub app_website: String,
    pub scopes: Vec<&'static str>,
    pub granted_by: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

pub fn grants_of(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<GrantView>> {
    type Row = (i64, String, String, String, String, NaiveDateTime, Option<NaiveDateTime>);
    // One query: the app and the granting user joined in, not looked up per grant.
    let rows: Vec<Row> = oauth_grants::table
        .inner_join(oauth_apps::table)
        .inner_join(users::table.on(users::id.eq(oauth_grants::user_id)))
        .filter(oauth_grants::business_id.eq(business_id))
        .filter(oauth_grants::revoked_at.is_null())
        .filter(oauth_apps::deleted_at.is_null())
        .order(oauth_grants::id.desc())
        .select((
            oauth_grants::id,
            oauth_apps::name,
            oauth_apps::website,
            oauth_grants::scopes,
            users::email,
            oauth_grants::created_at,
            oauth_grants::last_used_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, app_name, app_website, scopes, granted_by, created_at, last_used_at)| GrantView {
            id,
            app_name,
            app_website,
            scopes: parse_scopes(&scopes).unwrap_or_default(),
            granted_by,
            created_at,
            last_used_at,
        })
        .collect())
}

/// "Thu hồi" on the business's API page: the app's tokens for this business stop at once.
pub fn revoke_grant(conn: &mut DbConn, actor: &Actor, business_id: i64, grant_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let found: Option<i64> = oauth_grants::table
            .filter(oauth_grants::id.eq(grant_id))
            .filter(oauth_grants::business_id.eq(business_id))
            .filter(oauth_grants::revoked_at.is_null())
            .select(oauth_grants::id)
            .first(conn)
            .optional()?;
        let g = found.ok_or(AppError::NotFound)?;
        end_grant(conn, g, now())?;
        audit::record(conn, actor, "oauth_grant", g, "revoke", None, None)?;
        Ok(())
    })
}

/// The businesses a user may grant an app: those they own or manage, by name.
pub fn grantable_businesses(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<(i64, String)>> {
    let mut out: Vec<(i64, String)> = crate::business::models::businesses_of(conn, user_id)?
        .into_iter()
        .filter(|(_, role)| role == "owner" || role == "manager")
        .map(|(b, _)| (b.id, b.name))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_and_plain() {
        assert_eq!(parse_redirects(" https://a.vn/cb \nhttp://127.0.0.1:8765/cb\n").map(|v| v.len()), Ok(2));
        for bad in ["http://a.vn/cb", "https://a.vn/\tcb", "https://a.vn/cb#x", "javascript:alert(1)", "/cb", ""] {
            assert!(parse_redirects(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pkce_s256_and_scopes() {
        // RFC 7636 appendix B's example.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_ok(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_ok(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!pkce_ok("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert_eq!(parse_scopes(""), Ok(vec!["read"]));
        assert_eq!(parse_scopes("webhooks read"), Ok(vec!["read", "webhooks"]));
        assert!(parse_scopes("read admin").is_err());
    }
}
