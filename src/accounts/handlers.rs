//! Login, logout, first-run setup, own password, and the admin's user pages.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::models::{self, Role};
use super::pages::*;
use super::service::{self, UserInput};
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, redirect, render, render_status};
use crate::web::session;

const ADMIN: Access = Access::Roles(&[Role::Admin]);

crate::routes! {
    GET "/login" => Access::Public, login_form;
    POST "/login" => Access::Public, login;
    POST "/logout" => Access::SignedIn, logout;
    GET "/setup" => Access::Public, setup_form;
    POST "/setup" => Access::Public, setup;
    GET "/account/password" => Access::SignedIn, password_form;
    POST "/account/password" => Access::SignedIn, change_password;
    GET "/admin/users" => ADMIN, list_users;
    GET "/admin/users/new" => ADMIN, new_user_form;
    POST "/admin/users" => ADMIN, create_user;
    GET "/admin/users/{id}" => ADMIN, edit_user;
    POST "/admin/users/{id}" => ADMIN, update_user;
    POST "/admin/users/{id}/disable" => ADMIN, disable_user;
    POST "/admin/users/{id}/enable" => ADMIN, enable_user;
    POST "/admin/users/{id}/password" => ADMIN, reset_password;
}

/// Only same-site paths are followed after login (no open redirect). Browsers drop
/// tabs and newlines from URLs and read a backslash as `/`, so `/\t/evil.example` would leave
/// the site: any control character or backslash refuses the target.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2000
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_never_leaves_the_site() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "/%09x\r",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/invite?token=abc")), "/invite?token=abc");
        assert_eq!(safe_next(None), "/");
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn no_users_yet(ctx: &Ctx) -> AppResult<bool> {
    Ok(ctx.db(|conn| Ok(models::count_staff(conn)?)).await? == 0)
}

async fn login_form(ctx: Ctx, q: web::Query<NextQuery>) -> AppResult<HttpResponse> {
    if no_users_yet(&ctx).await? {
        return Ok(redirect("/setup"));
    }
    let next = safe_next(q.next.as_deref());
    if ctx.user.is_some() {
        return Ok(redirect(&next));
    }
    render(&LoginPage {
        l: ctx.layout("Đăng nhập", &[]),
        email: String::new(),
        next,
        error: None,
        providers: super::portal::providers(&ctx),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

async fn login(ctx: Ctx, req: HttpRequest, form: web::Form<LoginForm>) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let address = crate::web::access::client_address(&req, &ctx.state.config.trusted_proxies);
    let (email, password) = (form.email.clone(), form.password.clone());
    let outcome = ctx.db(move |conn| service::authenticate(conn, &email, &password, &address)).await?;
    let next = safe_next(form.next.as_deref());
    match outcome {
        Ok(user) => {
            session::sign_in(&ctx.session, &user, &ctx.state.session_clock)?;
            // Merchants land in their own area unless they were going somewhere.
            let merchant = user.kind() == models::UserKind::Merchant;
            Ok(redirect(if merchant && next == "/" { "/app" } else { &next }))
        }
        Err(e) => {
            let status = match e {
                service::LoginError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let page = LoginPage {
                l: ctx.layout("Đăng nhập", &[]),
                email: form.email,
                next,
                error: Some(e.message()),
                providers: super::portal::providers(&ctx),
            };
            render_status(status, &page)
        }
    }
}

async fn logout(ctx: Ctx) -> AppResult<HttpResponse> {
    session::sign_out(&ctx.session);
    Ok(redirect("/login"))
}

async fn setup_form(ctx: Ctx) -> AppResult<HttpResponse> {
    if !no_users_yet(&ctx).await? {
        return Err(AppError::NotFound);
    }
    render(&SetupPage {
        l: ctx.layout("Khởi tạo hệ thống", &[]),
        email: String::new(),
        name: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
struct SetupForm {
    email: String,
    name: String,
    password: String,
    confirm: String,
}

async fn setup(ctx: Ctx, form: web::Form<SetupForm>) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    if !no_users_yet(&ctx).await? {
        return Err(AppError::NotFound);
    }
    let result = if form.password != form.confirm {
        Err(AppError::Validation("Mật khẩu nhập lại không khớp.".into()))
    } else {
        let (e, n, p) = (form.email.clone(), form.name.clone(), form.password.clone());
        ctx.db(move |conn| service::setup_first_admin(conn, &e, &n, &p)).await
    };
    match result {
        Ok(user) => {
            session::sign_in(&ctx.session, &user, &ctx.state.session_clock)?;
            ctx.flash("success", "Đã tạo tài khoản quản trị. Hãy tạo tài khoản cho từng thành viên.");
            Ok(redirect("/admin/users"))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                l: ctx.layout("Khởi tạo hệ thống", &[]),
                email: form.email,
                name: form.name,
                error: Some(msg),
            },
        ),
        Err(e) => Err(e),
    }
}

async fn password_form(ctx: Ctx) -> AppResult<HttpResponse> {
    render(&PasswordPage { l: ctx.layout("Đổi mật khẩu", &[]), error: None })
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    password: String,
    confirm: String,
}

async fn change_password(ctx: Ctx, form: web::Form<PasswordForm>) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let f = form.into_inner();
    match ctx.db(move |conn| service::change_own_password(conn, uid, &f.current, &f.password, &f.confirm)).await {
        Ok(user) => {
            session::refresh_epoch(&ctx.session, &user)?;
            ctx.flash("success", "Đã đổi mật khẩu. Các phiên đăng nhập khác đã kết thúc.");
            Ok(redirect(if user.kind() == models::UserKind::Merchant { "/app/account" } else { "/" }))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage { l: ctx.layout("Đổi mật khẩu", &[]), error: Some(msg) },
        ),
        Err(e) => Err(e),
    }
}

async fn list_users(ctx: Ctx) -> AppResult<HttpResponse> {
    let users = ctx.db(|conn| Ok(models::list(conn)?)).await?;
    render(&UsersPage { l: ctx.layout("Người dùng", &[("Quản trị", "/admin/users")]), users })
}

async fn new_user_form(ctx: Ctx) -> AppResult<HttpResponse> {
    let page = NewUserPage {
        l: ctx.layout("Thêm người dùng", &[("Người dùng", "/admin/users")]),
        form: UserForm::default(),
        error: None,
    };
    render(&page)
}

/// The user form; role checkboxes are named `role_<code>`.
#[derive(Deserialize, Default, Clone)]
pub struct UserForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    pub role_admin: Option<String>,
    pub role_sale: Option<String>,
    pub role_leader: Option<String>,
    pub role_technician: Option<String>,
    pub role_accountant: Option<String>,
}

impl UserForm {
    pub fn roles(&self) -> Vec<Role> {
        [
            (Role::Admin, &self.role_admin),
            (Role::Sale, &self.role_sale),
            (Role::Leader, &self.role_leader),
            (Role::Technician, &self.role_technician),
            (Role::Accountant, &self.role_accountant),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(r, _)| r)
        .collect()
    }

    pub fn has(&self, role: &Role) -> bool {
        self.roles().contains(role)
    }
}

async fn create_user(ctx: Ctx, form: web::Form<UserForm>) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let form = form.into_inner();
    let input = UserInput {
        email: form.email.clone(),
        name: form.name.clone(),
        password: form.password.clone(),
        roles: form.roles(),
    };
    match ctx.db(move |conn| service::create_user(conn, &actor, &input)).await {
        Ok(user) => {
            ctx.flash("success", format!("Đã tạo tài khoản {}.", user.email));
            Ok(redirect("/admin/users"))
        }
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewUserPage {
                l: ctx.layout("Thêm người dùng", &[("Người dùng", "/admin/users")]),
                form: UserForm { password: String::new(), ..form },
                error: Some(msg),
            },
        ),
        Err(e) => Err(e),
    }
}

async fn show_edit(ctx: &Ctx, id: i64, error: Option<String>, status: StatusCode) -> AppResult<HttpResponse> {
    let user = ctx.db(move |conn| Ok(models::find(conn, id)?)).await?;
    let roles = user.roles();
    let form = UserForm {
        email: user.email.clone(),
        name: user.name.clone(),
        password: String::new(),
        role_admin: roles.has(Role::Admin).then(String::new),
        role_sale: roles.has(Role::Sale).then(String::new),
        role_leader: roles.has(Role::Leader).then(String::new),
        role_technician: roles.has(Role::Technician).then(String::new),
        role_accountant: roles.has(Role::Accountant).then(String::new),
    };
    let page = EditUserPage { l: ctx.layout(&user.name, &[("Người dùng", "/admin/users")]), user, form, error };
    render_status(status, &page)
}

async fn edit_user(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    show_edit(&ctx, id.into_inner(), None, StatusCode::OK).await
}

/// Runs an admin action on one user; a validation error re-shows the edit page.
async fn user_action<F>(ctx: Ctx, id: i64, done: &str, f: F) -> AppResult<HttpResponse>
where
    F: FnOnce(&mut crate::db::DbConn, &crate::audit::Actor) -> AppResult<models::User> + Send + 'static,
{
    let actor = ctx.actor()?;
    match ctx.db(move |conn| f(conn, &actor)).await {
        Ok(user) => {
            ctx.flash("success", format!("{done}: {}.", user.email));
            Ok(redirect(&format!("/admin/users/{id}")))
        }
        Err(AppError::Validation(msg)) => show_edit(&ctx, id, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await,
        Err(e) => Err(e),
    }
}

async fn update_user(ctx: Ctx, id: web::Path<i64>, form: web::Form<UserForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let form = form.into_inner();
    user_action(ctx, id, "Đã cập nhật", move |conn, actor| {
        service::update_profile(conn, actor, id, &form.name, &form.roles())
    })
    .await
}

async fn disable_user(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    user_action(ctx, id, "Đã khóa tài khoản", move |conn, actor| service::set_disabled(conn, actor, id, true)).await
}

async fn enable_user(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    user_action(ctx, id, "Đã mở khóa tài khoản", move |conn, actor| {
        service::set_disabled(conn, actor, id, false)
    })
    .await
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    password: String,
}

async fn reset_password(ctx: Ctx, id: web::Path<i64>, form: web::Form<ResetForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let password = form.into_inner().password;
    user_action(ctx, id, "Đã đặt lại mật khẩu", move |conn, actor| {
        service::reset_password(conn, actor, id, &password)
    })
    .await
}
