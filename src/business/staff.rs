//! The staff's side of businesses: a read-only support view for administrators (every
//! view audited), upgrade requests, putting a business on a plan, and the link between
//! a business and a hub desk merchant (shown on both pages).

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::models::{self, BankAccount, Business, MemberRow, Plan, PlanRequest};
use super::service::{self, BizRole, PlanStatus};
use crate::accounts::Role;
use crate::audit;
use crate::error::AppResult;
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, act, render};

const ADMIN: Access = Access::Roles(&[Role::Admin]);
const DESK: Access = Access::Roles(&[Role::Sale, Role::Leader]);

crate::routes! {
    GET "/admin/businesses" => ADMIN, list;
    GET "/admin/businesses/{id}" => ADMIN, show;
    POST "/admin/businesses/{id}/plan" => ADMIN, set_plan;
    POST "/admin/businesses/{id}/merchant" => ADMIN, link_merchant_from_business;
    POST "/merchants/{id}/business" => DESK, link_business_from_merchant;
}

#[derive(Template)]
#[template(path = "business/staff_list.html")]
struct ListPage {
    l: Layout,
    q: String,
    rows: Vec<(Business, PlanStatus)>,
    total: i64,
    page: i64,
    pages: i64,
    requests: Vec<(PlanRequest, String)>,
    plans: Vec<Plan>,
}

impl ListPage {
    fn plan_name(&self, id: &i64) -> String {
        self.plans.iter().find(|p| p.id == *id).map(|p| p.name.clone()).unwrap_or_default()
    }

    fn page_link(&self, page: i64) -> String {
        format!("/admin/businesses?q={}&page={page}", urlencoding::encode(&self.q))
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<i64>,
}

const PER_PAGE: i64 = 50;

async fn list(ctx: Ctx, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let key = crate::mail::inbound::classify::fold(q.q.trim());
    let (rows, total, requests, plans) = ctx
        .db(move |conn| {
            let (businesses, total) = models::all_businesses(conn, &key, (page - 1) * PER_PAGE, PER_PAGE)?;
            let mut rows = Vec::with_capacity(businesses.len());
            for b in businesses {
                let status = service::plan_status(conn, &b)?;
                rows.push((b, status));
            }
            Ok((rows, total, models::open_plan_requests(conn)?, models::plans(conn)?))
        })
        .await?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    render(&ListPage {
        l: ctx.layout("Doanh nghiệp (hỗ trợ)", &[("Quản trị", "/admin/users")]),
        q: q.q,
        rows,
        total,
        page,
        pages,
        requests,
        plans,
    })
}

#[derive(Template)]
#[template(path = "business/staff_show.html")]
struct ShowPage {
    l: Layout,
    business: Business,
    status: PlanStatus,
    members: Vec<MemberRow>,
    accounts: Vec<BankAccount>,
    requests: Vec<PlanRequest>,
    plans: Vec<Plan>,
    hub_merchant: Option<(i64, String)>,
}

impl ShowPage {
    fn role_label(&self, code: &str) -> &'static str {
        BizRole::label_of(code)
    }

    fn plan_name(&self, id: &i64) -> String {
        self.plans.iter().find(|p| p.id == *id).map(|p| p.name.clone()).unwrap_or_default()
    }
}

async fn show(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    let page_data = ctx
        .db(move |conn| {
            let business = models::business(conn, id)?;
            // Support reads merchants' data: each look is on the record.
            audit::record(conn, &actor, "business", id, "staff_view", None, None)?;
            let status = service::plan_status(conn, &business)?;
            let hub_merchant = match business.hub_merchant_id {
                Some(mid) => models::hub_merchant(conn, mid)?,
                None => None,
            };
            Ok((
                status,
                models::members(conn, id)?,
                models::linked_accounts(conn, id)?,
                models::plan_requests_of(conn, id)?,
                models::plans(conn)?,
                hub_merchant,
                business,
            ))
        })
        .await?;
    let (status, members, accounts, requests, plans, hub_merchant, business) = page_data;
    render(&ShowPage {
        l: ctx.layout(&business.name.clone(), &[("Doanh nghiệp", "/admin/businesses")]),
        business,
        status,
        members,
        accounts,
        requests,
        plans,
        hub_merchant,
    })
}

#[derive(Deserialize)]
struct PlanForm {
    #[serde(default)]
    plan_id: i64,
}

async fn set_plan(ctx: Ctx, id: web::Path<i64>, form: web::Form<PlanForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let plan_id = form.into_inner().plan_id;
    act(ctx, &format!("/admin/businesses/{id}"), "Đã đổi gói dịch vụ.", move |conn, actor| {
        service::set_plan(conn, actor, id, plan_id)
    })
    .await
}

#[derive(Deserialize)]
struct MerchantForm {
    #[serde(default)]
    merchant_id: String,
}

/// An empty or "0" id unlinks; anything else must be a number.
fn optional_id(s: &str) -> AppResult<Option<i64>> {
    let s = s.trim().trim_start_matches('#');
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    s.parse::<i64>().map(Some).map_err(|_| crate::error::AppError::Validation("Mã số không hợp lệ.".into()))
}

async fn link_merchant_from_business(
    ctx: Ctx,
    id: web::Path<i64>,
    form: web::Form<MerchantForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let merchant = form.into_inner().merchant_id;
    act(ctx, &format!("/admin/businesses/{id}"), "Đã cập nhật liên kết merchant.", move |conn, actor| {
        service::link_hub_merchant(conn, actor, id, optional_id(&merchant)?)
    })
    .await
}

#[derive(Deserialize)]
struct BusinessLinkForm {
    #[serde(default)]
    business_id: String,
    /// The business currently linked, when unlinking.
    #[serde(default)]
    current: String,
}

async fn link_business_from_merchant(
    ctx: Ctx,
    id: web::Path<i64>,
    form: web::Form<BusinessLinkForm>,
) -> AppResult<HttpResponse> {
    let merchant_id = id.into_inner();
    let f = form.into_inner();
    act(
        ctx,
        &format!("/merchants/{merchant_id}"),
        "Đã cập nhật liên kết doanh nghiệp.",
        move |conn, actor| {
            match optional_id(&f.business_id)? {
                Some(bid) => {
                    // One business per merchant: the old link goes first.
                    if let Some(old) = models::business_of_merchant(conn, merchant_id)?
                        && old.id != bid
                    {
                        service::link_hub_merchant(conn, actor, old.id, None)?;
                    }
                    service::link_hub_merchant(conn, actor, bid, Some(merchant_id))
                }
                None => match optional_id(&f.current)? {
                    Some(old) => {
                        let linked = models::business_of_merchant(conn, merchant_id)?;
                        if linked.is_some_and(|b| b.id == old) {
                            service::link_hub_merchant(conn, actor, old, None)
                        } else {
                            Err(crate::error::AppError::Validation(
                                "Doanh nghiệp này không liên kết với merchant.".into(),
                            ))
                        }
                    }
                    None => Ok(()),
                },
            }
        },
    )
    .await
}
