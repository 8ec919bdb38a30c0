//! What every page shares: the navigation a role may see, flash messages,
//! breadcrumbs and the CSRF token. Handlers get it through the [`Ctx`] extractor.

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};

use super::AppState;
use super::access::Access;
use super::once::{Done, Once};
use super::session::{self, CsrfToken, CurrentUser, Flash};
use crate::accounts::Role;
use crate::audit::Actor;
use crate::error::{AppError, AppResult};

/// One entry of the main navigation.
pub struct NavEntry {
    pub label: &'static str,
    pub href: &'static str,
    pub access: Access,
}

/// The main navigation, in order; each person sees only what their roles open.
#[rustfmt::skip]
pub const NAV: &[NavEntry] = &[
    NavEntry { label: "Tổng quan", href: "/", access: Access::Staff },
    NavEntry { label: "Việc của tôi", href: "/my", access: Access::Staff },
    NavEntry { label: "Bảng điều khiển", href: "/dashboard", access: Access::Staff },
    NavEntry { label: "Yêu cầu kết nối", href: "/requests", access: Access::Staff },
    NavEntry { label: "PYC", href: "/pyc", access: Access::Staff },
    NavEntry { label: "Báo cáo tháng", href: "/reports", access: Access::Roles(&[Role::Accountant]) },
    NavEntry { label: "Đối soát", href: "/reports/reconcile", access: Access::Roles(&[Role::Accountant]) },
    NavEntry { label: "Hộp thư đối tác", href: "/mail", access: MAIL_DESK },
    NavEntry { label: "Thư đã gửi", href: "/mail/sent", access: MAIL_DESK },
    NavEntry { label: "Merchant", href: "/merchants", access: Access::Staff },
    NavEntry { label: "Khách hàng", href: "/customers", access: MAIL_DESK },
    NavEntry { label: "Đối tác", href: "/admin/partners", access: ADMIN },
    NavEntry { label: "Người dùng", href: "/admin/users", access: ADMIN },
    NavEntry { label: "Quy tắc thư", href: "/admin/mail-rules", access: ADMIN },
    NavEntry { label: "Mẫu PYC", href: "/admin/pyc-templates", access: ADMIN },
    NavEntry { label: "Ngưỡng quá hạn", href: "/admin/ageing", access: ADMIN },
    NavEntry { label: "Hàng đợi", href: "/admin/jobs", access: ADMIN },
    NavEntry { label: "Nhật ký thao tác", href: "/admin/audit", access: ADMIN },
    NavEntry { label: "Doanh nghiệp (hỗ trợ)", href: "/admin/businesses", access: ADMIN },
    NavEntry { label: "Doanh nghiệp", href: "/app", access: Access::Merchant },
    NavEntry { label: "Tài khoản", href: "/app/account", access: Access::Merchant },
];

const ADMIN: Access = Access::Roles(&[Role::Admin]);
const MAIL_DESK: Access = Access::Roles(&[Role::Sale, Role::Leader]);

#[derive(Clone, Debug)]
pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub active: bool,
}

#[derive(Clone, Debug)]
pub struct Crumb {
    pub label: String,
    pub href: String,
}

/// The data of the base template.
#[derive(Clone, Debug)]
pub struct Layout {
    pub title: String,
    pub user: Option<CurrentUser>,
    pub nav: Vec<NavItem>,
    pub flashes: Vec<Flash>,
    pub crumbs: Vec<Crumb>,
    pub csrf: String,
}

impl Layout {
    pub fn asset_version(&self) -> &'static str {
        super::assets::version()
    }

    pub fn user_name(&self) -> &str {
        self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("")
    }

    pub fn user_roles(&self) -> String {
        self.user.as_ref().map(|u| u.roles.labels()).unwrap_or_default()
    }

    pub fn is_staff(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_staff())
    }

    /// A fresh idempotency token for one create form (its hidden `_once` field): each
    /// render gets its own, so sending that render twice creates one row.
    pub fn once(&self) -> String {
        session::new_token()
    }

    /// Where the brand link leads: the merchant area for merchants, the desk for staff.
    pub fn home(&self) -> &'static str {
        if self.user.as_ref().is_some_and(|u| u.is_merchant()) { "/app" } else { "/" }
    }
}

/// Request context for page handlers.
pub struct Ctx {
    pub state: web::Data<AppState>,
    pub user: Option<CurrentUser>,
    pub csrf: String,
    pub session: Session,
    path: String,
}

impl Ctx {
    /// The signed-in user; guarded routes always have one.
    pub fn user(&self) -> AppResult<&CurrentUser> {
        self.user.as_ref().ok_or_else(AppError::forbidden)
    }

    pub fn actor(&self) -> AppResult<Actor> {
        Ok(self.user()?.actor())
    }

    /// The layout for a page titled `title`, below the given breadcrumbs.
    pub fn layout(&self, title: &str, crumbs: &[(&str, &str)]) -> Layout {
        let visible: Vec<&NavEntry> =
            NAV.iter().filter(|e| self.user.is_some() && e.access.allows(self.user.as_ref())).collect();
        let matches = |href: &str| {
            if href == "/" { self.path == "/" } else { self.path == href || self.path.starts_with(&format!("{href}/")) }
        };
        // The most specific entry is the active one (/app/account over /app).
        let active = visible.iter().filter(|e| matches(e.href)).map(|e| e.href).max_by_key(|h| h.len());
        let nav =
            visible.iter().map(|e| NavItem { label: e.label, href: e.href, active: Some(e.href) == active }).collect();
        Layout {
            title: title.to_string(),
            user: self.user.clone(),
            nav,
            flashes: session::take_flashes(&self.session),
            crumbs: crumbs.iter().map(|(l, h)| Crumb { label: l.to_string(), href: h.to_string() }).collect(),
            csrf: self.csrf.clone(),
        }
    }

    pub fn flash(&self, kind: &str, message: impl Into<String>) {
        session::add_flash(&self.session, kind, message);
    }

    /// Runs a database function on the blocking pool.
    pub async fn db<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::db::DbConn) -> AppResult<T> + Send + 'static,
    {
        self.state.db(f).await
    }
}

impl FromRequest for Ctx {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = match req.app_data::<web::Data<AppState>>() {
            Some(s) => s.clone(),
            None => {
                return std::future::ready(Err(AppError::internal(anyhow::anyhow!("app state missing"))));
            }
        };
        // Read the extensions first: get_session borrows them mutably.
        let (user, csrf) = {
            let ext = req.extensions();
            (ext.get::<CurrentUser>().cloned(), ext.get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default())
        };
        std::future::ready(Ok(Ctx { state, user, csrf, session: req.get_session(), path: req.path().to_string() }))
    }
}

/// What a page's HTML is given to start with.
const PAGE_CAPACITY: usize = 48 * 1024;

/// Renders an askama page as a 200 HTML response.
pub fn render(page: &impl askama::Template) -> AppResult<HttpResponse> {
    render_status(actix_web::http::StatusCode::OK, page)
}

/// Renders an askama page with a status (422 for a form with errors).
pub fn render_status<T: askama::Template>(status: actix_web::http::StatusCode, page: &T) -> AppResult<HttpResponse> {
    // A list page is tens of kilobytes; growing from the template's static size hint
    // copied it several times over.
    let mut body = String::with_capacity(PAGE_CAPACITY.max(T::SIZE_HINT));
    page.render_into(&mut body)?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

/// Runs a form's action, flashes its outcome (a person's error in red, not an error
/// page) and goes back to `back`.
pub async fn act<F>(ctx: Ctx, back: &str, done: &str, f: F) -> AppResult<HttpResponse>
where
    F: FnOnce(&mut crate::db::DbConn, &Actor) -> AppResult<()> + Send + 'static,
{
    act_once(ctx, Once::none(), back, done, f).await
}

/// [`act`] for a form that creates something: a second submission of the same
/// rendered form gets the first one's answer and creates nothing (see [`super::once`]).
pub async fn act_once<F>(ctx: Ctx, once: Once, back: &str, done: &str, f: F) -> AppResult<HttpResponse>
where
    F: FnOnce(&mut crate::db::DbConn, &Actor) -> AppResult<()> + Send + 'static,
{
    let answer = Done::new(back, done);
    match super::once::submit(&ctx, once, move |conn, actor| f(conn, actor).map(|()| answer)).await {
        Ok(response) => Ok(response),
        Err(AppError::Validation(msg)) | Err(AppError::Conflict(msg)) => {
            ctx.flash("error", msg);
            Ok(redirect(back))
        }
        Err(e) => Err(e),
    }
}

/// A 303 redirect after a successful form.
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, to.to_string())).finish()
}

/// The page a list was asked for, within bounds: `?page=` is typed by people and
/// crafted by others, and a huge one would overflow the row offset.
pub fn page_number(asked: Option<i64>) -> i64 {
    asked.unwrap_or(1).clamp(1, 1_000_000)
}
