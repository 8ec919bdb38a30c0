//! Who is asking, and whether their form is genuine.
//!
//! Sessions live entirely in a signed cookie (no server state, so any node serves
//! any request). On each request this middleware finds the user, ending the session
//! when the account was disabled, its password changed (the epoch moved) or the login
//! is older than the configured lifetime. The user's row comes from a small cache
//! ([`UserCache`]) rather than a database hop of its own per request: a change to
//! `users` made by this process empties it as the change commits, so this node refuses
//! a disabled account or an old epoch, and sees new roles, from the very next request;
//! a change made by another process (another node, the CLI) is seen within
//! [`USER_CACHE_TTL`]. It also enforces CSRF on every unsafe
//! method outside the token-authenticated prefixes: the session's token must come back
//! in the `_csrf` form field or the `X-CSRF-Token` header. A multipart body is never
//! read here: on a route declared as an upload the [`super::upload::Upload`]
//! extractor checks its `_csrf` first field (after the role guard); on any other route
//! it is refused. A token in the query string counts for nothing.

use actix_session::{Session, SessionExt};
use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use base64::Engine;
use rand::RngCore;

use super::AppState;
use crate::accounts::models::UserKind;
use crate::accounts::{Roles, User};
use crate::audit::Actor;
use crate::error::AppError;

/// Paths that authenticate with a token of their own instead of the session cookie.
pub const CSRF_EXEMPT_PREFIXES: &[&str] =
    &["/v1/", "/v2/", "/inbound/", "/bank-hooks/", "/zalo/webhook", "/oauth/token", "/oauth/revoke"];

const KEY_UID: &str = "uid";
const KEY_EPOCH: &str = "epoch";
const KEY_ISSUED: &str = "iat";
const KEY_CSRF: &str = "csrf";
const KEY_FLASH: &str = "flash";

/// The signed-in staff member, put in the request extensions by the middleware.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub roles: Roles,
    pub kind: UserKind,
    /// Merchants finish their account with a phone number before anything else.
    pub has_phone: bool,
    pub email_verified: bool,
}

impl CurrentUser {
    pub fn is_staff(&self) -> bool {
        self.kind == UserKind::Staff
    }

    pub fn is_merchant(&self) -> bool {
        self.kind == UserKind::Merchant
    }

    pub fn actor(&self) -> Actor {
        Actor::user(self.id, &self.email)
    }
}

/// The session's CSRF token, for forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// A one-time message shown on the next page.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub kind: String,
    pub message: String,
}

pub fn add_flash(session: &Session, kind: &str, message: impl Into<String>) {
    let mut flashes: Vec<Flash> = session.get(KEY_FLASH).ok().flatten().unwrap_or_default();
    flashes.push(Flash { kind: kind.into(), message: message.into() });
    if let Err(e) = session.insert(KEY_FLASH, flashes) {
        tracing::warn!(error = %e, "cannot store flash message");
    }
}

pub fn take_flashes(session: &Session) -> Vec<Flash> {
    // `remove` marks the session changed even when the key is absent, and a changed
    // session is signed and sent again: on every page, for nothing.
    if !session.contains_key(KEY_FLASH) {
        return Vec::new();
    }
    match session.remove_as::<Vec<Flash>>(KEY_FLASH) {
        Some(Ok(flashes)) => flashes,
        _ => Vec::new(),
    }
}

/// Starts a signed-in session for `user` (a fresh CSRF token too: no fixation).
pub fn sign_in(session: &Session, user: &User, clock: &SessionClock) -> Result<(), AppError> {
    session.renew();
    let now = clock.now();
    let result = session
        .insert(KEY_UID, user.id)
        .and_then(|_| session.insert(KEY_EPOCH, user.session_epoch))
        .and_then(|_| session.insert(KEY_ISSUED, now))
        .and_then(|_| session.insert(KEY_CSRF, new_token()));
    result.map_err(|e| AppError::internal(anyhow::anyhow!("session: {e}")))
}

/// Keeps the current session valid after the user's own password change bumped the epoch.
pub fn refresh_epoch(session: &Session, user: &User) -> Result<(), AppError> {
    session.insert(KEY_EPOCH, user.session_epoch).map_err(|e| AppError::internal(anyhow::anyhow!("session: {e}")))
}

pub fn sign_out(session: &Session) {
    session.purge();
}

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// The app-wide middleware: user, CSRF token, CSRF check.
pub async fn middleware(mut req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, Error> {
    let session = req.get_session();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let token = match session.get::<String>(KEY_CSRF).ok().flatten() {
        Some(t) => t,
        None => {
            let t = new_token();
            session.insert(KEY_CSRF, &t)?;
            t
        }
    };

    if let (Some(uid), Some(state)) = (session.get::<i64>(KEY_UID).ok().flatten(), state) {
        match load_user(&state, &session, uid).await {
            Ok(Some(user)) => {
                req.extensions_mut().insert(user);
            }
            Ok(None) => {}
            Err(e) => return Ok(req.into_response(e.error_response())),
        }
    }

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let exempt = CSRF_EXEMPT_PREFIXES.iter().any(|p| req.path().starts_with(p));
    // A form for a route that will refuse this person is answered by the route's guard
    // (303 to the login, or 403) before a byte of its body is read. Only asked of forms:
    // it matches the path against every declared route.
    let refused = || {
        let user = req.extensions().get::<CurrentUser>().cloned();
        super::access::refused_everywhere(req.method(), req.path(), user.as_ref())
    };
    if unsafe_method && !exempt && !refused() && !upload_deferred(&req) {
        let (submitted, once) = submitted_token(&mut req).await;
        if let Some(once) = once {
            req.extensions_mut().insert(super::once::SubmittedOnce(once));
        }
        if !submitted.is_some_and(|s| constant_time_eq(s.as_bytes(), token.as_bytes())) {
            tracing::warn!(path = %req.path(), "request refused: missing or wrong CSRF token");
            return Ok(req.into_response(AppError::Csrf.error_response()));
        }
    }
    req.extensions_mut().insert(CsrfToken(token));
    next.call(req).await
}

/// The clock sessions expire by: the system's, moved forward by what a test asks, so
/// that no test waits out a session's lifetime (nor measures it in whole seconds while
/// a loaded machine stalls). The app never moves it.
#[derive(Clone, Default)]
pub struct SessionClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl SessionClock {
    /// Unix seconds.
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A monotonic instant, moved forward with the clock (for [`USER_CACHE_TTL`]).
    pub fn instant(&self) -> std::time::Instant {
        let ahead = self.0.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64;
        std::time::Instant::now() + std::time::Duration::from_secs(ahead)
    }

    /// Forward only, as time goes.
    pub fn advance(&self, by: std::time::Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.0.fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How long another process's change to a user (disabled, signed out everywhere, new
/// roles) may go unseen by this one. This process's own changes are seen at once.
pub const USER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Past this many cached users the cache starts over (memory stays bounded whatever
/// the number of accounts signing in).
const USER_CACHE_MAX: usize = 10_000;

/// What a session needs of its user's row.
#[derive(Clone)]
struct CachedUser {
    user: CurrentUser,
    disabled: bool,
    epoch: i64,
    /// [`crate::services::Versions::users`] when the row was read.
    version: u64,
    read_at: std::time::Instant,
}

/// The signed-in users' rows, by id, as last read by this process.
#[derive(Default)]
pub struct UserCache(std::sync::Mutex<std::collections::HashMap<i64, CachedUser>>);

impl UserCache {
    fn get(&self, uid: i64, version: u64, now: std::time::Instant) -> Option<CachedUser> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&uid)
            .filter(|c| c.version == version && now.saturating_duration_since(c.read_at) < USER_CACHE_TTL)
            .cloned()
    }

    fn put(&self, uid: i64, entry: CachedUser) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= USER_CACHE_MAX {
            map.clear();
        }
        map.insert(uid, entry);
    }
}

/// The session's user (from the cache, else the database); ends the session when it
/// is no longer valid.
async fn load_user(state: &AppState, session: &Session, uid: i64) -> Result<Option<CurrentUser>, AppError> {
    let epoch = session.get::<i64>(KEY_EPOCH).ok().flatten();
    let issued = session.get::<i64>(KEY_ISSUED).ok().flatten().unwrap_or(0);
    let expired = state.session_clock.now() - issued > state.config.session_ttl.as_secs() as i64;
    // Read before the row: a change committing meanwhile moves it, and the row read
    // here is then never taken as current.
    let version = state.versions.users.load(std::sync::atomic::Ordering::Acquire);
    let now = state.session_clock.instant();
    let cached = match state.users.get(uid, version, now) {
        Some(c) => Some(c),
        None => {
            let row = state
                .db(move |conn| match crate::accounts::models::find(conn, uid) {
                    Ok(u) => Ok(Some(u)),
                    Err(diesel::result::Error::NotFound) => Ok(None),
                    Err(e) => Err(e.into()),
                })
                .await?;
            row.map(|u| {
                let entry = CachedUser {
                    disabled: u.disabled,
                    epoch: u.session_epoch,
                    version,
                    read_at: now,
                    user: CurrentUser {
                        id: u.id,
                        roles: u.roles(),
                        kind: u.kind(),
                        has_phone: u.phone.is_some(),
                        email_verified: u.email_verified_at.is_some(),
                        email: u.email,
                        name: u.name,
                    },
                };
                state.users.put(uid, entry.clone());
                entry
            })
        }
    };
    match cached {
        Some(c) if !c.disabled && Some(c.epoch) == epoch && !expired => Ok(Some(c.user)),
        _ => {
            let had_expired = expired;
            for key in [KEY_UID, KEY_EPOCH, KEY_ISSUED] {
                session.remove(key);
            }
            if had_expired {
                add_flash(session, "info", "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.");
            }
            Ok(None)
        }
    }
}

fn content_type(req: &ServiceRequest) -> String {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

/// A multipart POST to a declared upload route: its extractor checks the token in
/// the first field, once the route's guard has let the person through.
fn upload_deferred(req: &ServiceRequest) -> bool {
    req.method() == Method::POST
        && content_type(req).starts_with("multipart/form-data")
        && super::upload::is_upload_route(req.path())
}

/// Reads the token a form sent (and its `_once` idempotency token, for
/// [`super::once`]), restoring the body for the handler afterwards. Only a urlencoded
/// body is read; any other (multipart included) carries no token.
async fn submitted_token(req: &mut ServiceRequest) -> (Option<String>, Option<String>) {
    if let Some(h) = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return (Some(h.to_string()), None);
    }
    if !content_type(req).starts_with("application/x-www-form-urlencoded") {
        return (None, None);
    }
    let (http_req, payload) = req.parts_mut();
    let Ok(body) = web::Bytes::from_request(http_req, payload).await else {
        return (None, None);
    };
    let fields = serde_urlencoded::from_bytes::<HiddenFields>(&body).ok();
    let (_, mut restored) = actix_http::h1::Payload::create(true);
    restored.unread_data(body);
    req.set_payload(Payload::from(restored));
    fields.map(|f| (Some(f._csrf), f._once)).unwrap_or((None, None))
}

/// The hidden fields every form may carry.
#[derive(serde::Deserialize)]
struct HiddenFields {
    #[serde(default)]
    _csrf: String,
    _once: Option<String>,
}

/// Extractor: the signed-in user (routes behind a staff guard always have one).
impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<CurrentUser>().cloned().ok_or_else(AppError::forbidden))
    }
}
