//! The merchant area under `/app`: businesses, members, invitations, plan, settings.
//!
//! Every `/app/b/{bid}/…` handler starts with [`Biz::load`], which checks membership
//! once: a business the person does not belong to (or a deleted one) is a 404, the
//! same as one that does not exist; an action above the member's role is a 403.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::models::{self, BankAccount, Business, Invitation, MemberRow, Plan, PlanRequest};
use super::pages::*;
use super::service::{self, BizRole, BusinessInput, PlanStatus};
use crate::accounts::portal::onboarding_redirect;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, act, act_once, redirect, render, render_status};
use crate::web::once::{Done, Once};

const M: Access = Access::Merchant;

crate::routes! {
    GET "/app" => M, home;
    GET "/app/businesses/new" => M, new_form;
    POST "/app/businesses" => M, create;
    GET "/app/b/{bid}" => M, overview;
    GET "/app/b/{bid}/accounts" => M, accounts;
    POST "/app/b/{bid}/accounts/{aid}/remove" => M, remove_account;
    GET "/app/b/{bid}/members" => M, members;
    POST "/app/b/{bid}/members/invite" => M, invite;
    POST "/app/b/{bid}/members/{mid}/role" => M, set_role;
    POST "/app/b/{bid}/members/{mid}/remove" => M, remove_member;
    POST "/app/b/{bid}/invitations/{iid}/revoke" => M, revoke_invitation;
    GET "/app/b/{bid}/plan" => M, plan;
    POST "/app/b/{bid}/plan/upgrade" => M, request_upgrade;
    GET "/app/b/{bid}/settings" => M, settings;
    POST "/app/b/{bid}/settings" => M, update_settings;
    POST "/app/b/{bid}/delete" => M, delete;
    GET "/invite" => Access::Public, invitation;
    POST "/invite/accept" => M, accept_invitation;
}

/// One business as its member sees it: the row, their role, the plan status, and the
/// other businesses for the switcher.
pub struct Biz {
    pub business: Business,
    pub role: BizRole,
    pub status: PlanStatus,
    pub hub_merchant: Option<(i64, String)>,
    pub others: Vec<(i64, String)>,
}

impl Biz {
    /// Loads the business if the signed-in merchant is a member with at least `min`.
    pub async fn load(ctx: &Ctx, bid: i64, min: BizRole) -> AppResult<Biz> {
        let uid = ctx.user()?.id;
        ctx.db(move |conn| Self::load_in(conn, bid, uid, min)).await
    }

    /// [`Self::load`] on a connection the caller holds, so that a page reads the
    /// business and its own rows in one database hop.
    pub fn load_in(conn: &mut crate::db::DbConn, bid: i64, uid: i64, min: BizRole) -> AppResult<Biz> {
        let (business, role) = models::membership(conn, bid, uid)?.ok_or(AppError::NotFound)?;
        let role = BizRole::parse(&role).ok_or(AppError::NotFound)?;
        if role < min {
            return Err(AppError::Forbidden(format!(
                "Vai trò {} trong doanh nghiệp này không được làm thao tác này.",
                role.label()
            )));
        }
        let status = service::plan_status(conn, &business)?;
        let hub_merchant = match business.hub_merchant_id {
            Some(mid) => models::hub_merchant(conn, mid)?,
            None => None,
        };
        let others = models::businesses_of(conn, uid)?
            .into_iter()
            .filter(|(b, _)| b.id != bid)
            .map(|(b, _)| (b.id, b.name))
            .collect();
        Ok(Biz { business, role, status, hub_merchant, others })
    }

    pub fn id(&self) -> i64 {
        self.business.id
    }

    pub fn can_manage(&self) -> bool {
        self.role >= BizRole::Manager
    }

    pub fn is_owner(&self) -> bool {
        self.role == BizRole::Owner
    }
}

/// Redirects a merchant who has not finished the phone step or verification.
macro_rules! onboarded {
    ($ctx:expr) => {
        if let Some(r) = onboarding_redirect(&$ctx) {
            return Ok(r);
        }
    };
}

async fn home(ctx: Ctx) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let uid = ctx.user()?.id;
    let rows = ctx
        .db(move |conn| {
            let mut rows = Vec::new();
            for (b, role) in models::businesses_of(conn, uid)? {
                let status = service::plan_status(conn, &b)?;
                rows.push(BusinessCard { role: BizRole::label_of(&role), business: b, status });
            }
            Ok(rows)
        })
        .await?;
    render(&AppHome { l: ctx.layout("Doanh nghiệp của tôi", &[]), rows })
}

async fn new_form(ctx: Ctx) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    render(&NewBusinessPage {
        l: ctx.layout("Tạo doanh nghiệp", &[("Doanh nghiệp", "/app")]),
        form: BusinessForm::default(),
        error: None,
    })
}

/// The business form; feature checkboxes are all named `feature`.
#[derive(Deserialize, Default, Clone)]
pub struct BusinessForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub website: String,
    #[serde(default)]
    pub feature: Vec<String>,
}

impl BusinessForm {
    fn input(&self) -> BusinessInput {
        BusinessInput { name: self.name.clone(), website: self.website.clone(), features: self.feature.clone() }
    }

    pub fn has(&self, code: &&str) -> bool {
        self.feature.iter().any(|f| f == code)
    }

    fn of(b: &Business) -> Self {
        BusinessForm {
            name: b.name.clone(),
            website: b.website.clone(),
            feature: b.features.split(',').filter(|f| !f.is_empty()).map(str::to_string).collect(),
        }
    }
}

/// Repeated checkboxes (`feature=a&feature=b`) need a form reader that keeps them all.
fn parse_business_form(body: &[u8]) -> AppResult<BusinessForm> {
    serde_html_form::from_bytes(body).map_err(|e| AppError::Validation(format!("Biểu mẫu không hợp lệ: {e}")))
}

async fn create(ctx: Ctx, once: Once, body: web::Bytes) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let form = parse_business_form(&body)?;
    let uid = ctx.user()?.id;
    let input = form.input();
    let created = crate::web::once::submit(&ctx, once, move |conn, actor| {
        let b = service::create_business(conn, actor, uid, &input)?;
        Ok(Done::new(
            format!("/app/b/{}", b.id),
            format!("Đã tạo doanh nghiệp {}. Tiếp theo: liên kết ngân hàng và các tích hợp.", b.name),
        ))
    });
    match created.await {
        Ok(response) => Ok(response),
        Err(AppError::Validation(msg)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewBusinessPage {
                l: ctx.layout("Tạo doanh nghiệp", &[("Doanh nghiệp", "/app")]), form, error: Some(msg)
            },
        ),
        Err(e) => Err(e),
    }
}

fn crumbs(biz: &Biz) -> Vec<(String, String)> {
    vec![("Doanh nghiệp".into(), "/app".into()), (biz.business.name.clone(), format!("/app/b/{}", biz.id()))]
}

fn layout(ctx: &Ctx, title: &str, biz: &Biz) -> crate::web::layout::Layout {
    let crumbs = crumbs(biz);
    let refs: Vec<(&str, &str)> = crumbs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    ctx.layout(title, &refs)
}

async fn overview(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let bid = biz.id();
    let (accounts, members) =
        ctx.db(move |conn| Ok((models::linked_accounts(conn, bid)?, models::members(conn, bid)?.len()))).await?;
    let l = ctx.layout(&biz.business.name.clone(), &[("Doanh nghiệp", "/app")]);
    render(&OverviewPage { l, tab: "overview", biz, accounts, members })
}

async fn accounts(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let bid = biz.id();
    let accounts: Vec<BankAccount> = ctx.db(move |conn| Ok(models::linked_accounts(conn, bid)?)).await?;
    render(&AccountsPage { l: layout(&ctx, "Tài khoản ngân hàng", &biz), tab: "accounts", biz, accounts })
}

async fn remove_account(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, aid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Manager).await?;
    let back = format!("/app/b/{}/accounts", biz.id());
    act(ctx, &back, "Đã gỡ liên kết tài khoản ngân hàng.", move |conn, actor| {
        service::remove_account(conn, actor, bid, aid)
    })
    .await
}

async fn members(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let bid = biz.id();
    let (members, invitations): (Vec<MemberRow>, Vec<Invitation>) =
        ctx.db(move |conn| Ok((models::members(conn, bid)?, models::open_invitations(conn, bid)?))).await?;
    let me = ctx.user()?.id;
    render(&MembersPage { l: layout(&ctx, "Thành viên", &biz), tab: "members", biz, members, invitations, me })
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn invite(ctx: Ctx, once: Once, bid: web::Path<i64>, form: web::Form<InviteForm>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Owner).await?;
    let bid = biz.id();
    let f = form.into_inner();
    let config = ctx.state.config.clone();
    let done = format!("Đã gửi lời mời đến {}.", f.email.trim());
    act_once(ctx, once, &format!("/app/b/{bid}/members"), &done, move |conn, actor| {
        service::invite(conn, &config, actor, bid, &f.email, &f.role)
    })
    .await
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn set_role(ctx: Ctx, path: web::Path<(i64, i64)>, form: web::Form<RoleForm>) -> AppResult<HttpResponse> {
    let (bid, mid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Owner).await?;
    let role = form.into_inner().role;
    act(ctx, &format!("/app/b/{}/members", biz.id()), "Đã đổi vai trò.", move |conn, actor| {
        service::set_member_role(conn, actor, bid, mid, &role)
    })
    .await
}

async fn remove_member(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, mid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Owner).await?;
    act(ctx, &format!("/app/b/{}/members", biz.id()), "Đã xóa thành viên.", move |conn, actor| {
        service::remove_member(conn, actor, bid, mid)
    })
    .await
}

async fn revoke_invitation(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (bid, iid) = path.into_inner();
    let biz = Biz::load(&ctx, bid, BizRole::Owner).await?;
    act(ctx, &format!("/app/b/{}/members", biz.id()), "Đã hủy lời mời.", move |conn, actor| {
        service::revoke_invitation(conn, actor, bid, iid)
    })
    .await
}

async fn plan(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    let bid = biz.id();
    let (plans, requests): (Vec<Plan>, Vec<PlanRequest>) =
        ctx.db(move |conn| Ok((models::plans(conn)?, models::plan_requests_of(conn, bid)?))).await?;
    render(&PlanPage { l: layout(&ctx, "Gói dịch vụ", &biz), tab: "plan", biz, plans, requests })
}

#[derive(Deserialize)]
struct UpgradeForm {
    #[serde(default)]
    plan_id: i64,
    #[serde(default)]
    note: String,
}

async fn request_upgrade(
    ctx: Ctx,
    once: Once,
    bid: web::Path<i64>,
    form: web::Form<UpgradeForm>,
) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let bid = biz.id();
    let f = form.into_inner();
    let config = ctx.state.config.clone();
    act_once(
        ctx,
        once,
        &format!("/app/b/{bid}/plan"),
        "Đã gửi yêu cầu nâng cấp. Nhân viên hubgate sẽ liên hệ với bạn.",
        move |conn, actor| service::request_upgrade(conn, &config, actor, bid, f.plan_id, &f.note),
    )
    .await
}

async fn show_settings(
    ctx: &Ctx,
    biz: Biz,
    form: Option<BusinessForm>,
    error: Option<String>,
    status: StatusCode,
) -> AppResult<HttpResponse> {
    let bid = biz.id();
    let accounts = ctx.db(move |conn| Ok(models::linked_accounts(conn, bid)?)).await?;
    let form = form.unwrap_or_else(|| BusinessForm::of(&biz.business));
    render_status(
        status,
        &SettingsPage { l: layout(ctx, "Thiết lập", &biz), tab: "settings", biz, form, accounts, error },
    )
}

async fn settings(ctx: Ctx, bid: web::Path<i64>) -> AppResult<HttpResponse> {
    onboarded!(ctx);
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Viewer).await?;
    show_settings(&ctx, biz, None, None, StatusCode::OK).await
}

async fn update_settings(ctx: Ctx, bid: web::Path<i64>, body: web::Bytes) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Manager).await?;
    let bid = biz.id();
    let form = parse_business_form(&body)?;
    let actor = ctx.actor()?;
    let input = form.input();
    match ctx.db(move |conn| service::update_business(conn, &actor, bid, &input)).await {
        Ok(_) => {
            ctx.flash("success", "Đã lưu thông tin doanh nghiệp.");
            Ok(redirect(&format!("/app/b/{bid}/settings")))
        }
        Err(AppError::Validation(msg)) => {
            show_settings(&ctx, biz, Some(form), Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm_name: String,
}

async fn delete(ctx: Ctx, bid: web::Path<i64>, form: web::Form<DeleteForm>) -> AppResult<HttpResponse> {
    let biz = Biz::load(&ctx, bid.into_inner(), BizRole::Owner).await?;
    let bid = biz.id();
    let actor = ctx.actor()?;
    let typed = form.into_inner().confirm_name;
    let name = biz.business.name.clone();
    match ctx.db(move |conn| service::delete_business(conn, &actor, bid, &typed)).await {
        Ok(()) => {
            ctx.flash("success", format!("Đã xóa doanh nghiệp {name}."));
            Ok(redirect("/app"))
        }
        Err(AppError::Validation(msg)) => {
            show_settings(&ctx, biz, None, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn invitation(ctx: Ctx, q: web::Query<TokenQuery>) -> AppResult<HttpResponse> {
    let token = q.into_inner().token;
    let config = ctx.state.config.clone();
    let t = token.clone();
    let view = ctx.db(move |conn| service::invitation_view(conn, &config, &t)).await?;
    let here = format!("/invite?token={}", urlencoding::encode(&token));
    let l = ctx.layout("Lời mời tham gia doanh nghiệp", &[]);
    render(&InvitationPage { l, view, token, here })
}

#[derive(Deserialize)]
struct AcceptForm {
    #[serde(default)]
    token: String,
}

async fn accept_invitation(ctx: Ctx, form: web::Form<AcceptForm>) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let token = form.into_inner().token;
    let config = ctx.state.config.clone();
    let t = token.clone();
    match ctx.db(move |conn| service::accept_invitation(conn, &config, uid, &t)).await {
        Ok(bid) => {
            ctx.flash("success", "Bạn đã tham gia doanh nghiệp.");
            // The phone step still comes first for a brand-new account.
            Ok(redirect(&format!("/app/b/{bid}")))
        }
        Err(AppError::Validation(msg)) => {
            ctx.flash("error", msg);
            Ok(redirect(&format!("/invite?token={}", urlencoding::encode(&token))))
        }
        Err(e) => Err(e),
    }
}
