//! The merchant's own account pages: sign-up, e-mail verification, password reset by
//! mail, sign-in with an OpenID provider, the phone step, and the account page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::merchant::{self, SignupInput};
use super::oidc::Pending;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, redirect, render, render_status};
use crate::web::session;

crate::routes! {
    GET "/signup" => Access::Public, signup_form;
    POST "/signup" => Access::Public, signup;
    GET "/verify-email" => Access::Public, verify_email;
    POST "/verify-email/resend" => Access::Merchant, resend_verification;
    GET "/password/forgot" => Access::Public, forgot_form;
    POST "/password/forgot" => Access::Public, forgot;
    GET "/password/reset" => Access::Public, reset_form;
    POST "/password/reset" => Access::Public, reset;
    GET "/auth/{provider}" => Access::Public, oidc_start;
    GET "/auth/{provider}/callback" => Access::Public, oidc_callback;
    GET "/app/welcome" => Access::Merchant, welcome_form;
    POST "/app/welcome" => Access::Merchant, welcome;
    GET "/app/verify" => Access::Merchant, verify_pending;
    GET "/app/account" => Access::Merchant, account;
    POST "/app/account" => Access::Merchant, update_account;
}

const KEY_OIDC: &str = "oidc";

/// Where a merchant must go before anything else: the phone step, then verification.
pub fn onboarding_redirect(ctx: &Ctx) -> Option<HttpResponse> {
    let user = ctx.user.as_ref()?;
    if !user.is_merchant() {
        return None;
    }
    if !user.has_phone {
        return Some(redirect("/app/welcome"));
    }
    if !user.email_verified {
        return Some(redirect("/app/verify"));
    }
    None
}

#[derive(Template)]
#[template(path = "accounts/signup.html")]
struct SignupPage {
    l: Layout,
    email: String,
    name: String,
    phone: String,
    next: String,
    error: Option<String>,
    providers: Vec<(&'static str, &'static str)>,
}

/// A short page with a heading, a message and one way on.
#[derive(Template)]
#[template(path = "accounts/message.html")]
pub struct MessagePage {
    pub l: Layout,
    pub message: String,
    pub link: Option<(String, String)>,
}

fn message(
    ctx: &Ctx,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> AppResult<HttpResponse> {
    render_status(
        status,
        &MessagePage {
            l: ctx.layout(title, &[]),
            message: text.to_string(),
            link: link.map(|(h, l)| (h.to_string(), l.to_string())),
        },
    )
}

pub fn providers(ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
    ctx.state.config.oidc.iter().map(|p| (p.key, p.label)).collect()
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn signup_form(ctx: Ctx, q: web::Query<NextQuery>) -> AppResult<HttpResponse> {
    if ctx.user.is_some() {
        return Ok(redirect("/"));
    }
    render(&SignupPage {
        l: ctx.layout("Đăng ký tài khoản", &[]),
        email: String::new(),
        name: String::new(),
        phone: String::new(),
        next: super::handlers::safe_next(q.next.as_deref()),
        error: None,
        providers: providers(&ctx),
    })
}

#[derive(Deserialize)]
struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    next: Option<String>,
}

async fn signup(ctx: Ctx, req: HttpRequest, form: web::Form<SignupForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    let input = SignupInput {
        email: f.email.clone(),
        name: f.name.clone(),
        phone: f.phone.clone(),
        password: f.password,
        confirm: f.confirm,
    };
    let address = crate::web::access::client_address(&req, &ctx.state.config.trusted_proxies);
    let config = ctx.state.config.clone();
    let next = super::handlers::safe_next(f.next.as_deref());
    match ctx.db(move |conn| merchant::signup(conn, &config, &input, &address)).await {
        Ok(user) => {
            session::sign_in(&ctx.session, &user, &ctx.state.session_clock)?;
            ctx.flash("success", format!("Đã tạo tài khoản. Chúng tôi đã gửi thư xác nhận đến {}.", user.email));
            Ok(redirect(if next == "/" { "/app" } else { &next }))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignupPage {
                l: ctx.layout("Đăng ký tài khoản", &[]),
                email: f.email,
                name: f.name,
                phone: f.phone,
                next,
                error: Some(msg),
                providers: providers(&ctx),
            },
        ),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn verify_email(ctx: Ctx, q: web::Query<TokenQuery>) -> AppResult<HttpResponse> {
    let config = ctx.state.config.clone();
    let token = q.into_inner().token;
    match ctx.db(move |conn| merchant::verify_email(conn, &config, &token)).await {
        Ok(user) => {
            let link = if ctx.user.is_some() {
                ("/app", "Vào trang doanh nghiệp")
            } else {
                ("/login?next=%2Fapp", "Đăng nhập")
            };
            message(
                &ctx,
                StatusCode::OK,
                "Đã xác nhận email",
                &format!("Email {} đã được xác nhận. Bạn có thể bắt đầu tạo doanh nghiệp.", user.email),
                Some(link),
            )
        }
        Err(AppError::Validation(msg)) => message(
            &ctx,
            StatusCode::GONE,
            "Liên kết không dùng được",
            &msg,
            Some(("/app/verify", "Gửi lại thư xác nhận")),
        ),
        Err(e) => Err(e),
    }
}

async fn verify_pending(ctx: Ctx) -> AppResult<HttpResponse> {
    let user = ctx.user()?.clone();
    if user.email_verified {
        return Ok(redirect("/app"));
    }
    #[derive(Template)]
    #[template(path = "accounts/verify_pending.html")]
    struct Page {
        l: Layout,
        email: String,
    }
    render(&Page { l: ctx.layout("Xác nhận email", &[]), email: user.email })
}

async fn resend_verification(ctx: Ctx, req: HttpRequest) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let address = crate::web::access::client_address(&req, &ctx.state.config.trusted_proxies);
    let config = ctx.state.config.clone();
    match ctx.db(move |conn| merchant::resend_verification(conn, &config, uid, &address)).await {
        Ok(()) => ctx.flash("success", "Đã gửi lại thư xác nhận. Hãy kiểm tra hộp thư (cả mục thư rác)."),
        Err(AppError::Validation(msg)) => ctx.flash("error", msg),
        Err(e) => return Err(e),
    }
    Ok(redirect("/app/verify"))
}

#[derive(Template)]
#[template(path = "accounts/forgot.html")]
struct ForgotPage {
    l: Layout,
    email: String,
    error: Option<String>,
}

async fn forgot_form(ctx: Ctx) -> AppResult<HttpResponse> {
    render(&ForgotPage { l: ctx.layout("Quên mật khẩu", &[]), email: String::new(), error: None })
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

async fn forgot(ctx: Ctx, req: HttpRequest, form: web::Form<ForgotForm>) -> AppResult<HttpResponse> {
    let email = form.into_inner().email;
    let address = crate::web::access::client_address(&req, &ctx.state.config.trusted_proxies);
    let config = ctx.state.config.clone();
    let e = email.clone();
    match ctx.db(move |conn| merchant::request_password_reset(conn, &config, &e, &address)).await {
        Ok(()) => message(
            &ctx,
            StatusCode::OK,
            "Kiểm tra hộp thư",
            "Nếu email này có tài khoản hubgate, chúng tôi đã gửi liên kết đặt lại mật khẩu (có hiệu lực 60 phút).",
            Some(("/login", "Quay lại đăng nhập")),
        ),
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ForgotPage { l: ctx.layout("Quên mật khẩu", &[]), email, error: Some(msg) },
        ),
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "accounts/reset.html")]
struct ResetPage {
    l: Layout,
    token: String,
    error: Option<String>,
}

async fn reset_form(ctx: Ctx, q: web::Query<TokenQuery>) -> AppResult<HttpResponse> {
    let token = q.into_inner().token;
    let config = ctx.state.config.clone();
    let t = token.clone();
    let usable = ctx.db(move |conn| merchant::link_is_usable(conn, &config, merchant::RESET_PASSWORD, &t)).await?;
    if !usable {
        return message(
            &ctx,
            StatusCode::GONE,
            "Liên kết không dùng được",
            "Liên kết không hợp lệ, đã hết hạn hoặc đã được dùng. Vui lòng yêu cầu một liên kết mới.",
            Some(("/password/forgot", "Yêu cầu liên kết mới")),
        );
    }
    render(&ResetPage { l: ctx.layout("Đặt mật khẩu mới", &[]), token, error: None })
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn reset(ctx: Ctx, form: web::Form<ResetForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    let config = ctx.state.config.clone();
    let token = f.token.clone();
    match ctx.db(move |conn| merchant::reset_password_with_link(conn, &config, &f.token, &f.password, &f.confirm)).await
    {
        Ok(_) => {
            session::sign_out(&ctx.session);
            ctx.flash("success", "Đã đặt mật khẩu mới. Hãy đăng nhập bằng mật khẩu mới.");
            Ok(redirect("/login"))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ResetPage { l: ctx.layout("Đặt mật khẩu mới", &[]), token, error: Some(msg) },
        ),
        Err(e) => Err(e),
    }
}

fn provider<'a>(ctx: &'a Ctx, key: &str) -> AppResult<&'a crate::config::OidcProvider> {
    ctx.state.config.oidc.iter().find(|p| p.key == key).ok_or(AppError::NotFound)
}

async fn oidc_start(ctx: Ctx, key: web::Path<String>, q: web::Query<NextQuery>) -> AppResult<HttpResponse> {
    let provider = provider(&ctx, &key)?.clone();
    let next = super::handlers::safe_next(q.next.as_deref());
    match ctx.state.oidc.start(&ctx.state.config, &provider, &next).await {
        Ok((url, pending)) => {
            ctx.session.insert(KEY_OIDC, &pending).map_err(|e| AppError::internal(anyhow::anyhow!("session: {e}")))?;
            Ok(redirect(&url))
        }
        Err(e) => {
            tracing::warn!(provider = %provider.key, error = ?e, "OpenID sign-in could not start");
            message(
                &ctx,
                StatusCode::BAD_GATEWAY,
                "Không đăng nhập được",
                &e.to_string(),
                Some(("/login", "Quay lại đăng nhập")),
            )
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
    error: Option<String>,
    error_description: Option<String>,
}

async fn oidc_callback(ctx: Ctx, key: web::Path<String>, q: web::Query<CallbackQuery>) -> AppResult<HttpResponse> {
    let provider = provider(&ctx, &key)?.clone();
    let q = q.into_inner();
    // The pending sign-in is single-use, whatever happens next.
    let pending: Option<Pending> = ctx.session.get(KEY_OIDC).ok().flatten();
    ctx.session.remove(KEY_OIDC);
    let outcome = match q.error {
        Some(err) => {
            Err(super::oidc::OidcError::Denied(q.error_description.unwrap_or(err).chars().take(200).collect()))
        }
        None => ctx.state.oidc.finish(&ctx.state.config, &provider, pending.clone(), &q.state, &q.code).await,
    };
    let identity = match outcome {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(provider = %provider.key, error = ?e, "OpenID sign-in refused");
            return message(
                &ctx,
                StatusCode::BAD_REQUEST,
                "Không đăng nhập được",
                &e.to_string(),
                Some(("/login", "Quay lại đăng nhập")),
            );
        }
    };
    let config = ctx.state.config.clone();
    match ctx.db(move |conn| merchant::oidc_sign_in(conn, &config, &identity)).await {
        Ok(user) => {
            session::sign_in(&ctx.session, &user, &ctx.state.session_clock)?;
            let next = pending.map(|p| p.next).unwrap_or_else(|| "/".into());
            Ok(redirect(if next == "/" { "/app" } else { &next }))
        }
        Err(AppError::Validation(msg)) | Err(AppError::Forbidden(msg)) => {
            message(&ctx, StatusCode::FORBIDDEN, "Không đăng nhập được", &msg, Some(("/login", "Quay lại đăng nhập")))
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "accounts/welcome.html")]
struct WelcomePage {
    l: Layout,
    phone: String,
    error: Option<String>,
}

async fn welcome_form(ctx: Ctx) -> AppResult<HttpResponse> {
    render(&WelcomePage { l: ctx.layout("Hoàn tất tài khoản", &[]), phone: String::new(), error: None })
}

#[derive(Deserialize)]
struct PhoneForm {
    #[serde(default)]
    phone: String,
}

async fn welcome(ctx: Ctx, form: web::Form<PhoneForm>) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let phone = form.into_inner().phone;
    let p = phone.clone();
    match ctx.db(move |conn| merchant::set_phone(conn, uid, &p)).await {
        Ok(_) => {
            ctx.flash("success", "Đã hoàn tất tài khoản.");
            Ok(redirect("/app"))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &WelcomePage { l: ctx.layout("Hoàn tất tài khoản", &[]), phone, error: Some(msg) },
        ),
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "accounts/account.html")]
struct AccountPage {
    l: Layout,
    name: String,
    email: String,
    phone: String,
    verified: bool,
    identities: Vec<(String, String)>,
    error: Option<String>,
}

async fn show_account(ctx: &Ctx, error: Option<String>, status: StatusCode) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let (user, identities) =
        ctx.db(move |conn| Ok((super::models::find(conn, uid)?, super::models::identities_of(conn, uid)?))).await?;
    render_status(
        status,
        &AccountPage {
            l: ctx.layout("Tài khoản của tôi", &[]),
            phone: user.phone.as_deref().map(merchant::display_phone).unwrap_or_default(),
            verified: user.email_verified_at.is_some(),
            name: user.name,
            email: user.email,
            identities,
            error,
        },
    )
}

async fn account(ctx: Ctx) -> AppResult<HttpResponse> {
    show_account(&ctx, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
}

async fn update_account(ctx: Ctx, form: web::Form<AccountForm>) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let f = form.into_inner();
    let saved = ctx
        .db(move |conn| {
            // Both fields checked before either is saved.
            merchant::normalise_phone(&f.phone)?;
            super::service::validate_name(&f.name)?;
            merchant::set_name(conn, uid, &f.name)?;
            merchant::set_phone(conn, uid, &f.phone)
        })
        .await;
    match saved {
        Ok(_) => {
            ctx.flash("success", "Đã lưu thông tin tài khoản.");
            Ok(redirect("/app/account"))
        }
        Err(AppError::Validation(msg)) => show_account(&ctx, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await,
        Err(e) => Err(e),
    }
}
