//! "Kho ứng dụng": a business's integrations, adding a webhook (with its test call),
//! and each webhook's delivery log with resend and replay.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::models::{self, AttemptRow, Integration, LogRow};
use super::service::{self, WebhookInput};
use super::webhook::{self, Attempt};
use crate::business::handlers::Biz;
use crate::business::models::BankAccount;
use crate::business::service::BizRole;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, act, render, render_status};

const M: Access = Access::Merchant;

crate::routes! {
    GET "/app/b/{bid}/integrations" => M, catalogue;
    GET "/app/b/{bid}/integrations/webhooks/new" => M, new_webhook;
    POST "/app/b/{bid}/integrations/webhooks" => M, create_webhook;
    GET "/app/b/{bid}/integrations/{iid}" => M, show;
    POST "/app/b/{bid}/integrations/{iid}/deliveries/{did}/resend" => M, resend;
    POST "/app/b/{bid}/integrations/{iid}/replay" => M, replay;
    POST "/app/b/{bid}/integrations/{iid}/toggle" => M, toggle;
    POST "/app/b/{bid}/integrations/{iid}/delete" => M, delete;
}

fn layout(ctx: &Ctx, title: &str, biz: &Biz) -> Layout {
    let crumbs =
        [("Doanh nghiệp".to_string(), "/app".to_string()), (biz.business.name.clone(), format!("/app/b/{}", biz.id()))];
    let refs: Vec<(&str, &str)> = crumbs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    ctx.layout(title, &refs)
}

#[derive(Template)]
#[template(path = "notify/catalogue.html")]
struct CataloguePage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    integrations: Vec<Integration>,
}

impl CataloguePage {
    fn format_label(&self, code: &str) -> &'static str {
        webhook::format_label(code)
    }
}

async fn catalogue(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let bid = biz.id();
    let integrations = ctx.db(move |conn| Ok(models::integrations_of(conn, bid)?)).await?;
    render(&CataloguePage { l: layout(&ctx, "Kho ứng dụng", &biz), tab: "integrations", biz, integrations })
}

#[derive(Template)]
#[template(path = "notify/webhook_form.html")]
struct WebhookForm {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    accounts: Vec<BankAccount>,
    form: WebhookFields,
    error: Option<String>,
}

impl WebhookForm {
    fn formats(&self) -> &'static [(&'static str, &'static str)] {
        webhook::FORMATS
    }
}

/// The webhook form as posted (repeated `account` boxes).
#[derive(Deserialize, Default, Clone)]
pub struct WebhookFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub income_only: Option<String>,
    #[serde(default)]
    pub account: Vec<String>,
}

impl WebhookFields {
    pub fn has_account(&self, id: &i64) -> bool {
        self.account.iter().any(|a| *a == id.to_string())
    }
}

async fn new_webhook(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let bid = biz.id();
    let accounts = ctx.db(move |conn| Ok(crate::business::models::linked_accounts(conn, bid)?)).await?;
    let form = WebhookFields { format: "casso_v2".into(), income_only: Some("1".into()), ..Default::default() };
    render(&WebhookForm {
        l: layout(&ctx, "Thêm webhook", &biz),
        tab: "integrations",
        biz,
        accounts,
        form,
        error: None,
    })
}

#[derive(Template)]
#[template(path = "notify/created.html")]
struct CreatedPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    integration: Integration,
    secret: String,
    test: Attempt,
}

async fn create_webhook(ctx: Ctx, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let bid = biz.id();
    let form: WebhookFields =
        serde_html_form::from_bytes(&body).map_err(|e| AppError::Validation(format!("Biểu mẫu không hợp lệ: {e}")))?;
    let accounts = form
        .account
        .iter()
        .map(|a| a.parse::<i64>().map_err(|_| AppError::Validation("Tài khoản không hợp lệ.".into())))
        .collect::<AppResult<Vec<i64>>>()?;
    let input = WebhookInput {
        name: form.name.clone(),
        url: form.url.clone(),
        format: form.format.clone(),
        income_only: form.income_only.is_some(),
        accounts,
    };
    let actor = ctx.actor()?;
    match service::create_webhook(&ctx.state, &actor, bid, input).await {
        Ok((integration, secret, test)) => render(&CreatedPage {
            l: layout(&ctx, "Webhook đã lưu", &biz),
            tab: "integrations",
            biz,
            integration,
            secret,
            test,
        }),
        Err(AppError::Validation(msg)) => {
            let accounts = ctx.db(move |conn| Ok(crate::business::models::linked_accounts(conn, bid)?)).await?;
            render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &WebhookForm {
                    l: layout(&ctx, "Thêm webhook", &biz),
                    tab: "integrations",
                    biz,
                    accounts,
                    form,
                    error: Some(msg),
                },
            )
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "notify/show.html")]
struct ShowPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    integration: Integration,
    log: Vec<LogRow>,
    attempts: Vec<AttemptRow>,
}

impl ShowPage {
    fn format_label(&self, code: &str) -> &'static str {
        webhook::format_label(code)
    }

    fn status_label(&self, s: &str) -> &'static str {
        match s {
            "delivered" => "Đã gửi",
            "pending" => "Đang gửi lại",
            "held" => "Tạm giữ",
            _ => "Thất bại",
        }
    }

    fn attempts_of(&self, delivery_id: &i64) -> Vec<&AttemptRow> {
        self.attempts.iter().filter(|a| a.delivery_id == *delivery_id).collect()
    }
}

async fn show(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Viewer).await?;
    let (integration, log, attempts) = ctx
        .db(move |conn| {
            let i = models::integration(conn, bid, iid)?;
            Ok((models::log(conn, i.id, 100)?, models::attempts_of(conn, i.id, 500)?, i))
        })
        .await
        .map(|(l, a, i)| (i, l, a))?;
    render(&ShowPage {
        l: layout(&ctx, &integration.name.clone(), &biz),
        tab: "integrations",
        biz,
        integration,
        log,
        attempts,
    })
}

async fn resend(ctx: Ctx, path: web::Path<(i64, i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid, did) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    act(ctx, &format!("/app/b/{bid}/integrations/{iid}"), "Đã xếp lịch gửi lại.", move |conn, actor| {
        service::resend(conn, actor, bid, iid, did)
    })
    .await
}

#[derive(Deserialize)]
struct ReplayForm {
    #[serde(default)]
    from: String,
}

async fn replay(ctx: Ctx, path: web::Path<(i64, i64)>, form: web::Form<ReplayForm>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    let from = NaiveDate::parse_from_str(form.from.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::Validation("Chọn ngày bắt đầu gửi lại.".into()));
    let back = format!("/app/b/{bid}/integrations/{iid}");
    let from = match from {
        Ok(d) => crate::fmt::local_midnight_utc(d),
        Err(AppError::Validation(msg)) => {
            ctx.flash("error", msg);
            return Ok(crate::web::layout::redirect(&back));
        }
        Err(e) => return Err(e),
    };
    act(ctx, &back, "Đã xếp lịch gửi lại các giao dịch từ ngày đã chọn.", move |conn, actor| {
        service::replay(conn, actor, bid, iid, from).map(|_| ())
    })
    .await
}

#[derive(Deserialize)]
struct ToggleForm {
    #[serde(default)]
    enabled: String,
}

async fn toggle(ctx: Ctx, path: web::Path<(i64, i64)>, form: web::Form<ToggleForm>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    let on = form.enabled == "1";
    act(
        ctx,
        &format!("/app/b/{bid}/integrations/{iid}"),
        if on { "Đã bật webhook." } else { "Đã tắt webhook." },
        move |conn, actor| service::set_enabled(conn, actor, bid, iid, on),
    )
    .await
}

async fn delete(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    act(ctx, &format!("/app/b/{bid}/integrations"), "Đã xóa webhook.", move |conn, actor| {
        service::delete(conn, actor, bid, iid)
    })
    .await
}
