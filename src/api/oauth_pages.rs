//! The OAuth pages and endpoints: the consent screen (`/oauth/authorize`), the token and
//! revocation endpoints apps call (`/oauth/token`, `/oauth/revoke`), the developer's
//! app registry (`/app/developer`), and revoking an app from a business's API page.
//!
//! Nothing the consent form posts back is trusted: the app, its redirect URI, the
//! scopes, the challenge and the user's role in the chosen business are checked again.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use serde::Deserialize;

use super::oauth::{self, App, TokenError};
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, act, redirect, render, render_status};
use crate::web::once::{self, Done, Once};
use crate::web::pages::error_page;

const P: Access = Access::Public;
const M: Access = Access::Merchant;

crate::routes! {
    GET "/oauth/authorize" => M, authorize;
    POST "/oauth/authorize" => M, decide;
    POST "/oauth/token" => P, token;
    POST "/oauth/revoke" => P, revoke;
    GET "/app/developer" => M, developer;
    POST "/app/developer/apps" => M, create_app;
    POST "/app/developer/apps/{id}/delete" => M, delete_app;
    POST "/app/b/{bid}/api/grants/{gid}/revoke" => M, revoke_grant;
}

// ---------------------------------------------------------------- consent

#[derive(Deserialize, Default, Clone)]
struct AuthRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

#[derive(Template)]
#[template(path = "api/consent.html")]
struct ConsentPage {
    l: Layout,
    app: App,
    developer: String,
    businesses: Vec<(i64, String)>,
    scopes: Vec<(&'static str, &'static str)>,
    scope: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
}

/// A request the app sent us that we cannot answer by redirecting (an unknown app, a
/// redirect URI it did not register): said to the person, never to the URI.
fn bad_request(message: &str) -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "Yêu cầu cấp quyền không hợp lệ", message)
}

/// Back to the app: `?code=…&state=…`, or `?error=…&error_description=…&state=…`.
fn back_to_app(redirect_uri: &str, pairs: &[(&str, &str)], state: &str) -> HttpResponse {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return bad_request("Địa chỉ chuyển hướng của ứng dụng không hợp lệ.");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if !state.is_empty() {
            q.append_pair("state", state);
        }
    }
    redirect(url.as_str())
}

/// What the app asked, checked: the app, where to send the answer, and then either the
/// scopes and challenge or the error to send there.
enum Checked {
    Refuse(HttpResponse),
    Ok { app: App, redirect_uri: String, scopes: Vec<&'static str>, challenge: String, state: String },
}

async fn check(ctx: &Ctx, q: AuthRequest) -> AppResult<Checked> {
    let client_id = q.client_id.clone().unwrap_or_default();
    let app = ctx.db(move |conn| Ok(oauth::app_by_client_id(conn, &client_id)?)).await?;
    let Some(app) = app else {
        return Ok(Checked::Refuse(bad_request("Không có ứng dụng nào với client_id này (có thể đã bị xóa).")));
    };
    let Some(redirect_uri) = app.redirect_for(q.redirect_uri.as_deref()) else {
        return Ok(Checked::Refuse(bad_request(
            "Địa chỉ chuyển hướng (redirect_uri) không khớp địa chỉ nào ứng dụng đã đăng ký.",
        )));
    };
    let state: String = q.state.clone().unwrap_or_default();
    if state.len() > 500 {
        return Ok(Checked::Refuse(bad_request("Tham số state quá dài.")));
    }
    let refuse = |error: &str, description: &str| {
        Ok(Checked::Refuse(back_to_app(&redirect_uri, &[("error", error), ("error_description", description)], &state)))
    };
    if q.response_type.as_deref() != Some("code") {
        return refuse("unsupported_response_type", "only response_type=code is supported");
    }
    let challenge = q.code_challenge.clone().unwrap_or_default();
    if q.code_challenge_method.as_deref() != Some("S256") || !oauth::challenge_ok(&challenge) {
        return refuse(
            "invalid_request",
            "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256",
        );
    }
    let scopes = match oauth::parse_scopes(q.scope.as_deref().unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return refuse("invalid_scope", &e),
    };
    Ok(Checked::Ok { app, redirect_uri, scopes, challenge, state })
}

/// `GET /oauth/authorize`: the consent screen, for a signed-in merchant (the guard
/// sends others to the login page, which comes back here with the whole request).
async fn authorize(ctx: Ctx, req: HttpRequest) -> AppResult<HttpResponse> {
    let user = ctx.user()?.clone();
    if let Some(r) = crate::accounts::portal::onboarding_redirect(&ctx) {
        return Ok(r);
    }
    let q: AuthRequest = match serde_html_form::from_str(req.query_string()) {
        Ok(q) => q,
        Err(_) => return Ok(bad_request("Yêu cầu có tham số lặp lại hoặc sai định dạng.")),
    };
    let (app, redirect_uri, scopes, challenge, state) = match check(&ctx, q).await? {
        Checked::Refuse(r) => return Ok(r),
        Checked::Ok { app, redirect_uri, scopes, challenge, state } => (app, redirect_uri, scopes, challenge, state),
    };
    let (uid, owner) = (user.id, app.owner_id);
    let (businesses, developer) = ctx
        .db(move |conn| {
            let developer = crate::accounts::models::find(conn, owner).map(|u| u.email).unwrap_or_default();
            Ok((oauth::grantable_businesses(conn, uid)?, developer))
        })
        .await?;
    render(&ConsentPage {
        l: ctx.layout("Cấp quyền cho ứng dụng", &[]),
        developer,
        businesses,
        scopes: oauth::SCOPES.iter().filter(|(s, _)| scopes.contains(s)).copied().collect(),
        scope: scopes.join(" "),
        app,
        redirect_uri,
        state,
        code_challenge: challenge,
    })
}

#[derive(Deserialize)]
struct Decision {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    business_id: Option<String>,
    decision: Option<String>,
}

/// `POST /oauth/authorize`: allow (for the chosen business) or deny.
async fn decide(ctx: Ctx, form: web::Form<Decision>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    let q = AuthRequest {
        response_type: Some("code".into()),
        client_id: f.client_id,
        redirect_uri: f.redirect_uri,
        scope: f.scope,
        state: f.state,
        code_challenge: f.code_challenge,
        code_challenge_method: Some("S256".into()),
    };
    let (app, redirect_uri, scopes, challenge, state) = match check(&ctx, q).await? {
        Checked::Refuse(r) => return Ok(r),
        Checked::Ok { app, redirect_uri, scopes, challenge, state } => (app, redirect_uri, scopes, challenge, state),
    };
    let actor = ctx.actor()?;
    if f.decision.as_deref() != Some("allow") {
        return Ok(back_to_app(
            &redirect_uri,
            &[("error", "access_denied"), ("error_description", "the user declined")],
            &state,
        ));
    }
    let bid = f.business_id.as_deref().and_then(|b| b.trim().parse::<i64>().ok()).unwrap_or(0);
    let (config, uid) = (ctx.state.config.clone(), ctx.user()?.id);
    let (app2, redirect2) = (app.clone(), redirect_uri.clone());
    let code = ctx
        .db(move |conn| {
            // Only a business the user owns or manages, whatever the form says.
            if !oauth::grantable_businesses(conn, uid)?.iter().any(|(id, _)| *id == bid) {
                return Err(AppError::Validation("Chọn một doanh nghiệp bạn sở hữu hoặc quản lý.".into()));
            }
            oauth::issue_code(conn, &config, &actor, &app2, bid, &redirect2, &scopes, &challenge)
        })
        .await;
    match code {
        Ok(code) => Ok(back_to_app(&redirect_uri, &[("code", &code)], &state)),
        Err(AppError::Validation(m)) => Ok(error_page(StatusCode::UNPROCESSABLE_ENTITY, "Chưa cấp quyền", &m)),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- token, revoke

#[derive(Deserialize, Default)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

fn token_error(e: TokenError) -> HttpResponse {
    let (status, code, description) = match e {
        TokenError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        TokenError::InvalidClient => {
            (StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong client secret".to_string())
        }
        TokenError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
        TokenError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token".to_string(),
        ),
        TokenError::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d),
        TokenError::Internal => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again in a moment".to_string())
        }
    };
    let mut r = HttpResponse::build(status);
    r.insert_header(("Cache-Control", "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.insert_header(("WWW-Authenticate", "Basic realm=\"hubgate\""));
    }
    r.json(serde_json::json!({ "error": code, "error_description": description }))
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or the
/// body's `client_id` / `client_secret`; both at once must agree.
fn client_credentials(req: &HttpRequest, form: &TokenForm) -> Result<(String, Option<String>), TokenError> {
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .map(|b64| {
            let raw =
                base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| TokenError::InvalidClient)?;
            let text = String::from_utf8(raw).map_err(|_| TokenError::InvalidClient)?;
            let (id, secret) = text.split_once(':').ok_or(TokenError::InvalidClient)?;
            let decode = |s: &str| urlencoding::decode(&s.replace('+', " ")).map(|c| c.into_owned());
            Ok::<_, TokenError>((
                decode(id).map_err(|_| TokenError::InvalidClient)?,
                decode(secret).map_err(|_| TokenError::InvalidClient)?,
            ))
        })
        .transpose()?;
    match (basic, &form.client_id) {
        (Some((id, secret)), body) => {
            if body.as_ref().is_some_and(|b| *b != id) || form.client_secret.is_some() {
                return Err(TokenError::InvalidRequest("use one way of client authentication".into()));
            }
            Ok((id, Some(secret)))
        }
        (None, Some(id)) => Ok((id.clone(), form.client_secret.clone())),
        (None, None) => Err(TokenError::InvalidClient),
    }
}

fn parse_form(body: &[u8]) -> Result<TokenForm, TokenError> {
    if body.len() > 16 * 1024 {
        return Err(TokenError::InvalidRequest("the body is too large".into()));
    }
    serde_html_form::from_bytes(body).map_err(|_| {
        TokenError::InvalidRequest("the body must be application/x-www-form-urlencoded, each parameter once".into())
    })
}

/// Runs `f` on the database's blocking pool; an unavailable pool is
/// `temporarily_unavailable`.
async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&mut crate::db::DbConn) -> Result<T, TokenError> + Send + 'static,
) -> Result<T, TokenError> {
    ctx.state.db(move |conn| Ok(f(conn))).await.map_err(TokenError::from)?
}

/// `POST /oauth/token`.
async fn token(ctx: Ctx, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result = async {
        let form = parse_form(&body)?;
        let (client_id, secret) = client_credentials(&req, &form)?;
        let config = ctx.state.config.clone();
        blocking(&ctx, move |conn| {
            let app = oauth::client(conn, &config, &client_id, secret.as_deref())?;
            match form.grant_type.as_deref() {
                Some("authorization_code") => {
                    let code = form
                        .code
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| TokenError::InvalidRequest("code is required".into()))?;
                    let verifier = form.code_verifier.as_deref().unwrap_or("");
                    oauth::exchange_code(conn, &config, &app, code, form.redirect_uri.as_deref(), verifier)
                }
                Some("refresh_token") => {
                    let t = form
                        .refresh_token
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| TokenError::InvalidRequest("refresh_token is required".into()))?;
                    oauth::refresh(conn, &config, &app, t, form.scope.as_deref())
                }
                _ => Err(TokenError::UnsupportedGrantType),
            }
        })
        .await
    }
    .await;
    match result {
        Ok(set) => HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(set),
        Err(e) => token_error(e),
    }
}

/// `POST /oauth/revoke` (RFC 7009).
async fn revoke(ctx: Ctx, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result = async {
        let form = parse_form(&body)?;
        let (client_id, secret) = client_credentials(&req, &form)?;
        let token = form
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::InvalidRequest("token is required".into()))?;
        let config = ctx.state.config.clone();
        blocking(&ctx, move |conn| {
            let app = oauth::client(conn, &config, &client_id, secret.as_deref())?;
            oauth::revoke_token(conn, &config, &app, &token)
        })
        .await
    }
    .await;
    match result {
        Ok(()) => HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish(),
        Err(e) => token_error(e),
    }
}

// ---------------------------------------------------------------- the developer's apps

#[derive(Template)]
#[template(path = "api/developer.html")]
struct DeveloperPage {
    l: Layout,
    apps: Vec<App>,
    created: Option<(String, String, Option<String>)>,
    error: Option<String>,
    base_url: String,
}

async fn developer_page(
    ctx: &Ctx,
    created: Option<(String, String, Option<String>)>,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let apps = ctx.db(move |conn| Ok(oauth::apps_of(conn, uid)?)).await?;
    let page = DeveloperPage {
        l: ctx.layout("Ứng dụng OAuth", &[("Doanh nghiệp", "/app")]),
        apps,
        base_url: ctx.state.config.base_url.trim_end_matches('/').to_string(),
        created,
        error,
    };
    if page.error.is_some() { render_status(StatusCode::UNPROCESSABLE_ENTITY, &page) } else { render(&page) }
}

async fn developer(ctx: Ctx) -> AppResult<HttpResponse> {
    developer_page(&ctx, None, None).await
}

#[derive(Deserialize)]
struct NewAppForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    website: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    confidential: Option<String>,
}

async fn create_app(ctx: Ctx, once: Once, form: web::Form<NewAppForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    let input = oauth::NewApp {
        name: f.name,
        website: f.website,
        redirect_uris: f.redirect_uris,
        confidential: f.confidential.is_some(),
    };
    let config = ctx.state.config.clone();
    let created = once::submit_first(&ctx, once, move |conn, actor| {
        let (app, secret) = oauth::create_app(conn, &config, actor, &input)?;
        let repeat = Done::new(
            "/app/developer",
            format!(
                "Biểu mẫu này đã được gửi: ứng dụng “{}” đã được tạo ở lần gửi trước; client secret chỉ hiển thị một lần.",
                app.name
            ),
        );
        Ok(((app.name, app.client_id, secret), repeat))
    });
    match created.await {
        Ok(Ok(created)) => developer_page(&ctx, Some(created), None).await,
        Ok(Err(repeat)) => Ok(repeat),
        Err(AppError::Validation(m)) => developer_page(&ctx, None, Some(m)).await,
        Err(e) => Err(e),
    }
}

async fn delete_app(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    act(
        ctx,
        "/app/developer",
        "Đã xóa ứng dụng; mọi token của ứng dụng đã ngừng hoạt động.",
        move |conn, actor| oauth::delete_app(conn, actor, id),
    )
    .await
}

async fn revoke_grant(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, gid) = path.into_inner();
    crate::business::handlers::Biz::load(&ctx, bid, crate::business::service::BizRole::Manager).await?;
    act(
        ctx,
        &format!("/app/b/{bid}/api"),
        "Đã thu hồi quyền của ứng dụng với doanh nghiệp này.",
        move |conn, actor| oauth::revoke_grant(conn, actor, bid, gid),
    )
    .await
}
