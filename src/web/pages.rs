//! Pages that belong to no domain: home, error pages, health.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::AppState;
use super::access::Access;
use super::layout::{Ctx, Layout, NAV, render};
use crate::audit::models::{AuditEntry, AuditFilter};
use crate::error::AppResult;
use crate::fmt::LocalTime;

crate::routes! {
    GET "/" => Access::Staff, home;
    GET "/healthz" => Access::Public, healthz;
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

fn asset() -> &'static str {
    super::assets::version()
}

/// The Vietnamese error page; shows only the message meant for people.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let page = ErrorPage { status: status.as_u16(), title, message };
    let body = page.render().unwrap_or_else(|_| message.to_string());
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body)
}

/// Every error a handler returns becomes a Vietnamese page with its status here, in
/// the web layer; `crate::error` itself knows nothing of pages.
impl actix_web::ResponseError for crate::error::AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            crate::error::AppError::NotFound => StatusCode::NOT_FOUND,
            crate::error::AppError::Forbidden(_) | crate::error::AppError::Csrf => StatusCode::FORBIDDEN,
            crate::error::AppError::Conflict(_) => StatusCode::CONFLICT,
            crate::error::AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            crate::error::AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            crate::error::AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            crate::error::AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let crate::error::AppError::Internal(cause) = self {
            tracing::error!(error = ?cause, "internal error");
        }
        error_page(self.status_code(), self.title(), &self.to_string())
    }
}

/// Fallback for unknown URLs.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if req.path().starts_with("/v1/") || req.path().starts_with("/v2/") {
        return crate::api::unknown(req).await;
    }
    error_page(StatusCode::NOT_FOUND, "Không tìm thấy", "Không tìm thấy trang hoặc dữ liệu bạn yêu cầu.")
}

struct Shortcut {
    label: &'static str,
    href: &'static str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    l: Layout,
    shortcuts: Vec<Shortcut>,
    recent: Vec<AuditEntry>,
}

impl HomePage {
    fn when(&self, e: &AuditEntry) -> LocalTime {
        LocalTime(e.at)
    }
}

async fn home(ctx: Ctx) -> AppResult<HttpResponse> {
    let user = ctx.user()?.clone();
    let uid = user.id;
    let recent = ctx
        .db(move |conn| {
            let filter = AuditFilter { user_id: Some(uid), ..Default::default() };
            Ok(crate::audit::models::page(conn, &filter, 0, 10)?.0)
        })
        .await?;
    let shortcuts = NAV
        .iter()
        .filter(|e| e.href != "/" && e.access.allows(Some(&user)))
        .map(|e| Shortcut { label: e.label, href: e.href })
        .collect();
    render(&HomePage { l: ctx.layout("Tổng quan", &[]), shortcuts, recent })
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let ok = state
        .db(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1")?;
            Ok(())
        })
        .await;
    match ok {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"})),
        Err(e) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "error", "database": e.to_string()}))
        }
    }
}
