//! "Kho ứng dụng": a business's integrations. Adding a webhook, an e-mail or a Telegram
//! bot (each with its test), the Zalo OA steps of the seed (banks → Zalo account →
//! fields → "Gọi thử" → Lưu → invitation code), each integration's page (settings with
//! a live preview, recipients, the delivery log with resend and replay), and the OA's
//! webhook.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::models::{self, AttemptRow, Integration, LogRow, Recipient};
use super::service::{self, Common, EmailInput, TelegramInput, Tried, Verdict, WebhookInput, ZaloOwner};
use super::webhook::{self, Attempt};
use super::{message, zalo};
use crate::business::handlers::Biz;
use crate::business::models::BankAccount;
use crate::business::service::BizRole;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, act, redirect, render, render_status};
use crate::web::once::Once;

const M: Access = Access::Merchant;

crate::routes! {
    GET "/app/b/{bid}/integrations" => M, catalogue;
    GET "/app/b/{bid}/integrations/preview" => M, preview;
    GET "/app/b/{bid}/integrations/webhooks/new" => M, new_webhook;
    POST "/app/b/{bid}/integrations/webhooks" => M, create_webhook;
    GET "/app/b/{bid}/integrations/email/new" => M, new_email;
    POST "/app/b/{bid}/integrations/email" => M, create_email;
    GET "/app/b/{bid}/integrations/telegram/new" => M, new_telegram;
    POST "/app/b/{bid}/integrations/telegram" => M, create_telegram;
    GET "/app/b/{bid}/integrations/zalo/new" => M, zalo_new;
    POST "/app/b/{bid}/integrations/zalo/banks" => M, zalo_banks;
    GET "/app/b/{bid}/integrations/zalo/account" => M, zalo_account;
    GET "/app/b/{bid}/integrations/zalo/login" => M, zalo_login;
    GET "/app/zalo/callback" => M, zalo_callback;
    GET "/app/b/{bid}/integrations/zalo/fields" => M, zalo_fields;
    POST "/app/b/{bid}/integrations/zalo/fields" => M, zalo_save_fields;
    GET "/app/b/{bid}/integrations/zalo/test" => M, zalo_test_page;
    POST "/app/b/{bid}/integrations/zalo/test" => M, zalo_test;
    POST "/app/b/{bid}/integrations/zalo/save" => M, zalo_save;
    POST "/zalo/webhook" => Access::Public, zalo_webhook;
    GET "/app/b/{bid}/integrations/{iid}" => M, show;
    POST "/app/b/{bid}/integrations/{iid}/settings" => M, settings;
    POST "/app/b/{bid}/integrations/{iid}/recipients/{rid}/remove" => M, remove_recipient;
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

fn bad_form(e: impl std::fmt::Display) -> AppError {
    AppError::Validation(format!("Biểu mẫu không hợp lệ: {e}"))
}

// ---------------------------------------------------------------- the catalogue

#[derive(Template)]
#[template(path = "notify/catalogue.html")]
struct CataloguePage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    integrations: Vec<Integration>,
    zalo_enabled: bool,
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
    render(&CataloguePage {
        l: layout(&ctx, "Kho ứng dụng", &biz),
        tab: "integrations",
        biz,
        integrations,
        zalo_enabled: ctx.state.config.zalo.enabled(),
    })
}

#[derive(Deserialize)]
struct PreviewQuery {
    #[serde(default)]
    field: Vec<String>,
}

/// The live preview: the message a sample transaction would give with these fields.
async fn preview(ctx: Ctx, bid: web::Path<i64>, req: HttpRequest) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let q: PreviewQuery = serde_html_form::from_str(req.query_string()).map_err(bad_form)?;
    let (tx, account) = message::sample(biz.id());
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(message::text(
        &message::normalise(&q.field),
        &tx,
        &account,
    )))
}

// ---------------------------------------------------------------- forms

/// Every channel's form as posted (repeated `account` and `field` boxes).
#[derive(Deserialize, Serialize, Default, Clone, Debug)]
pub struct ChannelForm {
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
    #[serde(default)]
    pub field: Vec<String>,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub chats: String,
    #[serde(default)]
    pub addresses: String,
    #[serde(default)]
    pub digest_minutes: String,
}

impl ChannelForm {
    fn defaults() -> Self {
        ChannelForm {
            format: "casso_v2".into(),
            income_only: Some("1".into()),
            field: message::DEFAULT_FIELDS.split(',').map(str::to_string).collect(),
            digest_minutes: "0".into(),
            ..Default::default()
        }
    }

    fn parse(body: &[u8]) -> AppResult<Self> {
        serde_html_form::from_bytes(body).map_err(bad_form)
    }

    pub fn has_account(&self, id: &i64) -> bool {
        self.account.iter().any(|a| *a == id.to_string())
    }

    pub fn has_field(&self, code: &str) -> bool {
        self.field.iter().any(|f| f == code)
    }

    fn common(&self) -> AppResult<Common> {
        let accounts = self
            .account
            .iter()
            .map(|a| a.parse::<i64>().map_err(|_| AppError::Validation("Tài khoản không hợp lệ.".into())))
            .collect::<AppResult<Vec<i64>>>()?;
        Ok(Common {
            name: self.name.clone(),
            income_only: self.income_only.is_some(),
            accounts,
            fields: self.field.clone(),
            once: Once::none(),
        })
    }

    fn preview(&self, business_id: i64) -> String {
        let (tx, account) = message::sample(business_id);
        message::text(&message::normalise(&self.field), &tx, &account)
    }
}

#[derive(Template)]
#[template(path = "notify/form.html")]
struct FormPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    channel: &'static str,
    accounts: Vec<BankAccount>,
    form: ChannelForm,
    error: Option<String>,
}

impl FormPage {
    fn formats(&self) -> &'static [(&'static str, &'static str)] {
        webhook::FORMATS
    }

    fn fields(&self) -> &'static [(&'static str, &'static str)] {
        message::FIELDS
    }

    fn digests(&self) -> &'static [(i64, &'static str)] {
        service::DIGEST_CHOICES
    }

    fn preview_text(&self) -> String {
        self.form.preview(self.biz.id())
    }

    fn title(&self) -> &'static str {
        match self.channel {
            "email" => "Thêm thông báo qua e-mail",
            "telegram" => "Thêm Telegram bot",
            "zalo" => "Tích hợp Zalo OA",
            _ => "Thêm webhook",
        }
    }
}

async fn form_page(
    ctx: &Ctx,
    biz: Biz,
    channel: &'static str,
    form: ChannelForm,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let bid = biz.id();
    let accounts = ctx.db(move |conn| Ok(crate::business::models::linked_accounts(conn, bid)?)).await?;
    let page =
        FormPage { l: layout(ctx, "Kho ứng dụng", &biz), tab: "integrations", biz, channel, accounts, form, error };
    if page.error.is_some() { render_status(StatusCode::UNPROCESSABLE_ENTITY, &page) } else { render(&page) }
}

async fn new_webhook(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    form_page(&ctx, biz, "webhook", ChannelForm::defaults(), None).await
}

async fn new_email(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let mut form = ChannelForm::defaults();
    form.addresses = ctx.user()?.email.clone();
    form_page(&ctx, biz, "email", form, None).await
}

async fn new_telegram(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    form_page(&ctx, biz, "telegram", ChannelForm::defaults(), None).await
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

async fn create_webhook(ctx: Ctx, once: Once, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let form = ChannelForm::parse(&body)?;
    let common = Common { once, ..form.common()? };
    let input = WebhookInput { common, url: form.url.clone(), format: form.format.clone() };
    let actor = ctx.actor()?;
    match service::create_webhook(&ctx.state, &actor, biz.id(), input).await {
        Ok((integration, secret, test)) => render(&CreatedPage {
            l: layout(&ctx, "Webhook đã lưu", &biz),
            tab: "integrations",
            biz,
            integration,
            secret,
            test,
        }),
        Err(AppError::Validation(msg)) => form_page(&ctx, biz, "webhook", form, Some(msg)).await,
        Err(e) => Err(e),
    }
}

async fn create_email(ctx: Ctx, once: Once, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let form = ChannelForm::parse(&body)?;
    let input = EmailInput {
        common: Common { once, ..form.common()? },
        addresses: form.addresses.clone(),
        digest_minutes: form.digest_minutes.trim().parse().unwrap_or(-1),
    };
    let actor = ctx.actor()?;
    match service::create_email(&ctx.state, &actor, biz.id(), input).await {
        Ok(i) => {
            ctx.flash("success", "Đã lưu. Một thư mẫu đang được gửi đến các địa chỉ đã nhập.");
            Ok(redirect(&format!("/app/b/{}/integrations/{}", biz.id(), i.id)))
        }
        Err(AppError::Validation(msg)) => form_page(&ctx, biz, "email", form, Some(msg)).await,
        Err(e) => Err(e),
    }
}

fn tried_text(t: &Tried) -> String {
    match (&t.verdict, &t.error) {
        (Verdict::Delivered, _) => "đã nhận tin nhắn thử".to_string(),
        (_, Some(e)) => e.clone(),
        _ => "không gửi được".to_string(),
    }
}

async fn create_telegram(ctx: Ctx, once: Once, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let form = ChannelForm::parse(&body)?;
    let common = Common { once, ..form.common()? };
    let input = TelegramInput { common, token: form.token.clone(), chats: form.chats.clone() };
    let actor = ctx.actor()?;
    match service::create_telegram(&ctx.state, &actor, biz.id(), input).await {
        Ok((i, results)) => {
            let all_ok = results.iter().all(|(_, r)| r.verdict == Verdict::Delivered);
            let lines: Vec<String> = results.iter().map(|(c, r)| format!("{c}: {}", tried_text(r))).collect();
            ctx.flash(if all_ok { "success" } else { "error" }, format!("Đã lưu. Gọi thử — {}", lines.join("; ")));
            Ok(redirect(&format!("/app/b/{}/integrations/{}", biz.id(), i.id)))
        }
        Err(AppError::Validation(msg)) => {
            // The token is never echoed back into the page.
            let form = ChannelForm { token: String::new(), ..form };
            form_page(&ctx, biz, "telegram", form, Some(msg)).await
        }
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- Zalo OA, step by step

const KEY_ZALO_DRAFT: &str = "zalo_draft";
const KEY_ZALO_USER: &str = "zalo_user";
const KEY_ZALO_LOGIN: &str = "zalo_login";

/// The integration being set up, kept in the signed session between the steps.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
struct ZaloDraft {
    business_id: i64,
    form: ChannelForm,
    tested: bool,
}

#[derive(Serialize, Deserialize)]
struct ZaloLogin {
    state: String,
    verifier: String,
    business_id: i64,
}

fn session_set<T: Serialize>(ctx: &Ctx, key: &str, v: &T) -> AppResult<()> {
    ctx.session.insert(key, v).map_err(|e| AppError::internal(anyhow::anyhow!("session: {e}")))
}

fn draft(ctx: &Ctx, business_id: i64) -> Option<ZaloDraft> {
    ctx.session.get::<ZaloDraft>(KEY_ZALO_DRAFT).ok().flatten().filter(|d| d.business_id == business_id)
}

fn zalo_user(ctx: &Ctx) -> Option<ZaloOwner> {
    ctx.session.get::<ZaloOwner>(KEY_ZALO_USER).ok().flatten()
}

async fn zalo_biz(ctx: &Ctx, bid: i64) -> AppResult<Biz> {
    if !ctx.state.config.zalo.enabled() {
        return Err(AppError::NotFound);
    }
    Biz::load(ctx, bid, BizRole::Manager).await
}

#[derive(Template)]
#[template(path = "notify/zalo_step.html")]
struct ZaloStep {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    step: u8,
    owner: Option<ZaloOwner>,
    form: ChannelForm,
    tested: bool,
    test_result: Option<String>,
}

impl ZaloStep {
    fn fields(&self) -> &'static [(&'static str, &'static str)] {
        message::FIELDS
    }

    fn preview_text(&self) -> String {
        self.form.preview(self.biz.id())
    }
}

fn zalo_step(ctx: &Ctx, biz: Biz, step: u8, d: &ZaloDraft, test_result: Option<String>) -> AppResult<HttpResponse> {
    render(&ZaloStep {
        l: layout(ctx, "Tích hợp Zalo OA", &biz),
        tab: "integrations",
        biz,
        step,
        owner: zalo_user(ctx),
        form: d.form.clone(),
        tested: d.tested,
        test_result,
    })
}

async fn zalo_new(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let form = draft(&ctx, biz.id()).map(|d| d.form).unwrap_or_else(ChannelForm::defaults);
    form_page(&ctx, biz, "zalo", form, None).await
}

/// Step 1 posted: the banks; on to "Thiết lập Zalo OA nhận dữ liệu".
async fn zalo_banks(ctx: Ctx, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let posted = ChannelForm::parse(&body)?;
    let mut d = draft(&ctx, biz.id()).unwrap_or(ZaloDraft {
        business_id: biz.id(),
        form: ChannelForm::defaults(),
        tested: false,
    });
    d.form.name = posted.name;
    d.form.income_only = posted.income_only;
    d.form.account = posted.account;
    // Accounts of another business are refused here already, not only at "Lưu".
    let owned: Vec<i64> = {
        let bid = biz.id();
        ctx.db(move |conn| Ok(crate::business::models::linked_accounts(conn, bid)?.into_iter().map(|a| a.id).collect()))
            .await?
    };
    if d.form.common()?.accounts.iter().any(|a| !owned.contains(a)) {
        let msg = "Tài khoản ngân hàng không thuộc doanh nghiệp này.".to_string();
        return form_page(&ctx, biz, "zalo", d.form, Some(msg)).await;
    }
    session_set(&ctx, KEY_ZALO_DRAFT, &d)?;
    Ok(redirect(&format!("/app/b/{}/integrations/zalo/account", biz.id())))
}

async fn zalo_account(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let Some(d) = draft(&ctx, biz.id()) else {
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/new", biz.id())));
    };
    zalo_step(&ctx, biz, 2, &d, None)
}

fn callback_url(ctx: &Ctx) -> String {
    format!("{}/app/zalo/callback", ctx.state.config.base_url)
}

/// "Đăng nhập bằng Zalo" (and "… bằng tài khoản Zalo khác": the same, forgetting the
/// account logged in before).
async fn zalo_login(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    ctx.session.remove(KEY_ZALO_USER);
    let (verifier, challenge) = zalo::pkce_pair();
    let state = zalo::pkce_pair().0;
    let url = zalo::authorize_url(&ctx.state.config.zalo, &callback_url(&ctx), &state, &challenge);
    session_set(&ctx, KEY_ZALO_LOGIN, &ZaloLogin { state, verifier, business_id: biz.id() })?;
    Ok(redirect(&url))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn zalo_callback(ctx: Ctx, q: web::Query<CallbackQuery>) -> AppResult<HttpResponse> {
    let pending: Option<ZaloLogin> = ctx.session.get(KEY_ZALO_LOGIN).ok().flatten();
    ctx.session.remove(KEY_ZALO_LOGIN);
    let Some(p) = pending.filter(|p| q.state.as_deref() == Some(p.state.as_str())) else {
        ctx.flash("error", "Phiên đăng nhập Zalo đã hết hạn hoặc không hợp lệ. Hãy thử lại.");
        return Ok(redirect("/app"));
    };
    let biz = zalo_biz(&ctx, p.business_id).await?;
    let back = format!("/app/b/{}/integrations/zalo/account", biz.id());
    let Some(code) = q.code.clone().filter(|_| q.error.is_none()) else {
        ctx.flash("error", "Bạn chưa cấp quyền cho hubgate trên Zalo.");
        return Ok(redirect(&back));
    };
    match zalo::login_user(&ctx.state.http, &ctx.state.config.zalo, &code, &p.verifier).await {
        Ok((user_id, name)) => {
            session_set(&ctx, KEY_ZALO_USER, &ZaloOwner { user_id, name })?;
            if let Some(mut d) = draft(&ctx, biz.id()) {
                d.tested = false;
                session_set(&ctx, KEY_ZALO_DRAFT, &d)?;
            }
        }
        Err(e) => ctx.flash("error", format!("Không đăng nhập được Zalo: {e}")),
    }
    Ok(redirect(&back))
}

async fn zalo_fields(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let Some(d) = draft(&ctx, biz.id()) else {
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/new", biz.id())));
    };
    if zalo_user(&ctx).is_none() {
        ctx.flash("error", "Hãy đăng nhập Zalo trước.");
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/account", biz.id())));
    }
    zalo_step(&ctx, biz, 3, &d, None)
}

async fn zalo_save_fields(ctx: Ctx, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let Some(mut d) = draft(&ctx, biz.id()) else {
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/new", biz.id())));
    };
    let posted = ChannelForm::parse(&body)?;
    d.form.field = message::normalise(&posted.field).split(',').map(str::to_string).collect();
    d.tested = false;
    session_set(&ctx, KEY_ZALO_DRAFT, &d)?;
    Ok(redirect(&format!("/app/b/{}/integrations/zalo/test", biz.id())))
}

async fn zalo_test_page(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let Some(d) = draft(&ctx, biz.id()) else {
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/new", biz.id())));
    };
    zalo_step(&ctx, biz, 4, &d, None)
}

/// "Gọi thử": a real message to the owner's Zalo through the OA.
async fn zalo_test(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let (Some(mut d), Some(owner)) = (draft(&ctx, biz.id()), zalo_user(&ctx)) else {
        ctx.flash("error", "Hãy chọn ngân hàng và đăng nhập Zalo trước.");
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/new", biz.id())));
    };
    let tried = service::zalo_test(&ctx.state, biz.id(), &owner, &d.form.field).await;
    d.tested = tried.verdict == Verdict::Delivered;
    session_set(&ctx, KEY_ZALO_DRAFT, &d)?;
    let result = if d.tested {
        format!("Đã gửi tin nhắn mẫu đến Zalo {}. Nhấn Lưu để lưu tích hợp.", owner.name)
    } else {
        let hint = match &tried.verdict {
            Verdict::Unreachable(_) => " Hãy quan tâm (follow) Zalo OA của hubgate rồi gọi thử lại.",
            _ => "",
        };
        format!("Gọi thử không thành công: {}.{hint}", tried_text(&tried))
    };
    zalo_step(&ctx, biz, 4, &d, Some(result))
}

async fn zalo_save(ctx: Ctx, once: Once, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    let biz = zalo_biz(&ctx, bid.into_inner()).await?;
    let (Some(d), Some(owner)) = (draft(&ctx, biz.id()), zalo_user(&ctx)) else {
        ctx.flash("error", "Hãy chọn ngân hàng và đăng nhập Zalo trước.");
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/new", biz.id())));
    };
    if !d.tested {
        ctx.flash("error", "Hãy gọi thử thành công trước khi lưu.");
        return Ok(redirect(&format!("/app/b/{}/integrations/zalo/test", biz.id())));
    }
    let actor = ctx.actor()?;
    let common = Common { once, ..d.form.common()? };
    let i = match service::create_zalo(&ctx.state, &actor, biz.id(), common, owner).await {
        Ok(i) => i,
        Err(AppError::Validation(msg)) => {
            ctx.flash("error", msg);
            return Ok(redirect(&format!("/app/b/{}/integrations", biz.id())));
        }
        Err(e) => return Err(e),
    };
    ctx.session.remove(KEY_ZALO_DRAFT);
    ctx.flash("success", "Đã lưu tích hợp Zalo OA. Gửi mã giới thiệu cho người cần nhận thông báo.");
    Ok(redirect(&format!("/app/b/{}/integrations/{}", biz.id(), i.id)))
}

/// Events of hubgate's OA (users writing to it, following it). The signature is
/// checked over the raw bytes; the event is stored and a job does the work, so Zalo
/// gets its answer at once.
async fn zalo_webhook(
    state: web::Data<crate::web::AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let header = req.headers().get("x-zevent-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if body.len() > 64 * 1024 || !zalo::signature_ok(&state.config.zalo, header, &body) {
        return Ok(HttpResponse::Unauthorized().json(serde_json::json!({ "error": 1, "message": "invalid signature" })));
    }
    let text = String::from_utf8_lossy(&body).to_string();
    state.db(move |conn| zalo::store_event(conn, &text)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "error": 0, "message": "ok" })))
}

// ---------------------------------------------------------------- one integration

#[derive(Template)]
#[template(path = "notify/show.html")]
struct ShowPage {
    l: Layout,
    tab: &'static str,
    biz: Biz,
    integration: Integration,
    recipients: Vec<Recipient>,
    accounts: Vec<BankAccount>,
    form: ChannelForm,
    log: Vec<LogRow>,
    attempts: Vec<AttemptRow>,
}

impl ShowPage {
    fn format_label(&self, code: &str) -> &'static str {
        webhook::format_label(code)
    }

    fn fields(&self) -> &'static [(&'static str, &'static str)] {
        message::FIELDS
    }

    fn preview_text(&self) -> String {
        self.form.preview(self.biz.id())
    }

    fn digest_label(&self) -> &'static str {
        let m = self.integration.digest_minutes().unwrap_or(0);
        service::DIGEST_CHOICES.iter().find(|(c, _)| *c == m).map(|(_, l)| *l).unwrap_or("")
    }

    fn status_label(&self, s: &str) -> &'static str {
        match s {
            "delivered" => "Đã gửi",
            "pending" => "Đang gửi",
            "held" => "Tạm giữ",
            _ => "Thất bại",
        }
    }

    fn recipient_status(&self, r: &Recipient) -> String {
        match r.status.as_str() {
            "active" => "đang nhận".into(),
            "removed" => "đã xóa".into(),
            _ => format!("không gửi được: {}", r.status_note.as_deref().unwrap_or("")),
        }
    }

    fn attempts_of(&self, delivery_id: &i64) -> Vec<&AttemptRow> {
        self.attempts.iter().filter(|a| a.delivery_id == *delivery_id).collect()
    }
}

async fn show(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Viewer).await?;
    let (integration, recipients, accounts, log, attempts) = ctx
        .db(move |conn| {
            let i = models::integration(conn, bid, iid)?;
            let r = models::recipients_of(conn, i.id)?;
            let a = crate::business::models::linked_accounts(conn, bid)?;
            let log = models::log(conn, i.id, 100)?;
            let attempts = models::attempts_of(conn, i.id, 500)?;
            Ok((i, r, a, log, attempts))
        })
        .await?;
    let form = ChannelForm {
        name: integration.name.clone(),
        income_only: integration.income_only.then(|| "1".to_string()),
        account: integration.account_ids.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect(),
        field: integration.fields.split(',').map(str::to_string).collect(),
        ..Default::default()
    };
    render(&ShowPage {
        l: layout(&ctx, &integration.name.clone(), &biz),
        tab: "integrations",
        biz,
        integration,
        recipients,
        accounts,
        form,
        log,
        attempts,
    })
}

async fn settings(ctx: Ctx, path: web::Path<(i64, i64)>, body: web::Bytes) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    let form = ChannelForm::parse(&body)?;
    let actor = ctx.actor()?;
    match service::update_common(&ctx.state, &actor, bid, iid, form.common()?).await {
        Ok(()) => ctx.flash("success", "Đã lưu thiết lập."),
        Err(AppError::Validation(msg)) => ctx.flash("error", msg),
        Err(e) => return Err(e),
    }
    Ok(redirect(&format!("/app/b/{bid}/integrations/{iid}")))
}

async fn remove_recipient(ctx: Ctx, path: web::Path<(i64, i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid, rid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    act(
        ctx,
        &format!("/app/b/{bid}/integrations/{iid}"),
        "Đã xóa khỏi danh sách nhận thông báo.",
        move |conn, actor| service::remove_recipient(conn, actor, bid, iid, rid),
    )
    .await
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
    let back = format!("/app/b/{bid}/integrations/{iid}");
    let Ok(day) = NaiveDate::parse_from_str(form.from.trim(), "%Y-%m-%d") else {
        ctx.flash("error", "Chọn ngày bắt đầu gửi lại.");
        return Ok(redirect(&back));
    };
    let from = crate::fmt::local_midnight_utc(day);
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
        if on { "Đã bật tích hợp." } else { "Đã tắt tích hợp." },
        move |conn, actor| service::set_enabled(conn, actor, bid, iid, on),
    )
    .await
}

async fn delete(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    Biz::load(&ctx, bid, BizRole::Manager).await?;
    act(ctx, &format!("/app/b/{bid}/integrations"), "Đã xóa tích hợp.", move |conn, actor| {
        service::delete(conn, actor, bid, iid)
    })
    .await
}
