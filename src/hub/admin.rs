//! Reference data of the desk (partners, customers) and the dashboard.
//!
//! Partners are data: adding one needs no code. Every change is audited.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Deserialize;

use super::state::State;
use crate::accounts::Role;
use crate::audit::{self, Actor};
use crate::db::schema::{customers, partners, requests};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::mail::inbound::models::{self as mail, Partner};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, redirect, render, render_status};
use crate::web::once::Once;

const ADMIN: Access = Access::Roles(&[Role::Admin]);
const DESK: Access = Access::Roles(&[Role::Sale, Role::Leader]);

crate::routes! {
    GET "/admin/partners" => ADMIN, partners_list;
    GET "/admin/partners/new" => ADMIN, partner_new;
    POST "/admin/partners" => ADMIN, partner_create;
    GET "/admin/partners/{id}" => ADMIN, partner_edit;
    POST "/admin/partners/{id}" => ADMIN, partner_update;
    GET "/customers" => DESK, customers_list;
    POST "/customers" => DESK, customer_create;
    GET "/dashboard" => Access::Staff, dashboard;
    GET "/admin/ageing" => ADMIN, ageing_form;
    POST "/admin/ageing" => ADMIN, ageing_save;
}

#[derive(Template)]
#[template(path = "hub/ageing.html")]
struct AgeingPage {
    l: Layout,
    /// (state, label, days): every open state, with its threshold when set.
    rows: Vec<(&'static str, String, String)>,
    error: Option<String>,
}

fn ageing_rows(
    t: &super::ageing::Thresholds,
    posted: Option<&[(String, String)]>,
) -> Vec<(&'static str, String, String)> {
    super::ageing::open_states()
        .into_iter()
        .map(|s| {
            let days = posted
                .and_then(|p| p.iter().find(|(k, _)| k == s.code()).map(|(_, v)| v.clone()))
                .or_else(|| t.days(s.code()).map(|d| d.to_string()))
                .unwrap_or_default();
            (s.code(), crate::hub::pages::state_label(s.code()), days)
        })
        .collect()
}

async fn ageing_form(ctx: Ctx) -> AppResult<HttpResponse> {
    let t = ctx.db(|conn| Ok(super::ageing::Thresholds::load(conn)?)).await?;
    render(&AgeingPage {
        l: ctx.layout("Ngưỡng quá hạn", &[("Quản trị", "/admin/users")]),
        rows: ageing_rows(&t, None),
        error: None,
    })
}

/// Fields are `days_<state>`; anything else in the form is ignored.
async fn ageing_save(ctx: Ctx, form: web::Form<Vec<(String, String)>>) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let posted: Vec<(String, String)> = form
        .into_inner()
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("days_").map(|s| (s.to_string(), v)))
        .collect();
    let input = posted.clone();
    match ctx.db(move |conn| super::ageing::save(conn, &actor, &input)).await {
        Ok(()) => {
            ctx.flash("success", "Đã lưu ngưỡng quá hạn.");
            Ok(redirect("/admin/ageing"))
        }
        Err(AppError::Validation(m)) => {
            let t = ctx.db(|conn| Ok(super::ageing::Thresholds::load(conn)?)).await?;
            render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &AgeingPage {
                    l: ctx.layout("Ngưỡng quá hạn", &[("Quản trị", "/admin/users")]),
                    rows: ageing_rows(&t, Some(&posted)),
                    error: Some(m),
                },
            )
        }
        Err(e) => Err(e),
    }
}

/// The partner form; also what the audit log keeps.
#[derive(Deserialize, Default, Clone, serde::Serialize)]
pub struct PartnerForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub mail_domains: String,
    #[serde(default)]
    pub mail_addresses: String,
    pub leader_confirmation_required: Option<String>,
    #[serde(default)]
    pub leader_addresses: String,
    #[serde(default)]
    pub cms_admin_name: String,
    #[serde(default)]
    pub signing_company: String,
    #[serde(default)]
    pub virtual_brand: String,
    #[serde(default)]
    pub virtual_point: String,
    #[serde(default)]
    pub accept_template: String,
    #[serde(default)]
    pub reply_template: String,
}

impl PartnerForm {
    fn of(p: &Partner) -> Self {
        PartnerForm {
            code: p.code.clone(),
            name: p.name.clone(),
            kind: p.kind.clone(),
            mail_domains: p.mail_domains.clone(),
            mail_addresses: p.mail_addresses.clone(),
            leader_confirmation_required: p.leader_confirmation_required.then(String::new),
            leader_addresses: p.leader_addresses.clone(),
            cms_admin_name: p.cms_admin_name.clone(),
            signing_company: p.signing_company.clone(),
            virtual_brand: p.virtual_brand.clone(),
            virtual_point: p.virtual_point.clone(),
            accept_template: p.accept_template.clone(),
            reply_template: p.reply_template.clone(),
        }
    }

    fn validate(&mut self) -> AppResult<()> {
        self.code = self.code.trim().to_uppercase();
        if self.code.is_empty() || !self.code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(AppError::Validation("Mã đối tác chỉ gồm chữ không dấu, số và gạch dưới, ví dụ MOMO.".into()));
        }
        if self.name.trim().is_empty() {
            return Err(AppError::Validation("Vui lòng nhập tên đối tác.".into()));
        }
        if self.kind != "payment" && self.kind != "voucher" {
            return Err(AppError::Validation("Loại đối tác phải là thanh toán hoặc voucher.".into()));
        }
        if self.mail_domains.trim().is_empty() && self.mail_addresses.trim().is_empty() {
            return Err(AppError::Validation(
                "Cần ít nhất một tên miền hoặc địa chỉ mail để nhận diện thư của đối tác.".into(),
            ));
        }
        Ok(())
    }
}

fn save_partner(conn: &mut DbConn, actor: &Actor, id: Option<i64>, mut f: PartnerForm) -> AppResult<i64> {
    f.validate()?;
    crate::db::tx(conn, |conn| {
        let t = now();
        let taken: Option<i64> =
            partners::table.filter(partners::code.eq(&f.code)).select(partners::id).first(conn).optional()?;
        if taken.is_some() && taken != id {
            return Err(AppError::Validation(format!("Mã {} đã có.", f.code)));
        }
        let values = (
            partners::code.eq(&f.code),
            partners::name.eq(f.name.trim()),
            partners::kind.eq(&f.kind),
            partners::mail_domains.eq(f.mail_domains.trim()),
            partners::mail_addresses.eq(f.mail_addresses.trim()),
            partners::leader_confirmation_required.eq(f.leader_confirmation_required.is_some()),
            partners::leader_addresses.eq(f.leader_addresses.trim()),
            partners::cms_admin_name.eq(f.cms_admin_name.trim()),
            partners::signing_company.eq(f.signing_company.trim()),
            partners::virtual_brand.eq(f.virtual_brand.trim()),
            partners::virtual_point.eq(f.virtual_point.trim()),
            partners::accept_template.eq(&f.accept_template),
            partners::reply_template.eq(&f.reply_template),
            partners::updated_at.eq(t),
        );
        let after = serde_json::to_value(&f).map_err(AppError::internal)?;
        match id {
            Some(id) => {
                let before = mail::partners(conn)?.into_iter().find(|p| p.id == id).ok_or(AppError::NotFound)?;
                diesel::update(partners::table.find(id)).set(values).execute(conn)?;
                let before = serde_json::to_value(PartnerForm::of(&before)).map_err(AppError::internal)?;
                audit::record(conn, actor, "partner", id, "update", Some(before), Some(after))?;
                Ok(id)
            }
            None => {
                let id: i64 = diesel::insert_into(partners::table)
                    .values((values, partners::created_at.eq(t)))
                    .returning(partners::id)
                    .get_result(conn)?;
                audit::record(conn, actor, "partner", id, "create", None, Some(after))?;
                Ok(id)
            }
        }
    })
}

#[derive(Template)]
#[template(path = "hub/partners.html")]
struct PartnersPage {
    l: Layout,
    partners: Vec<Partner>,
}

async fn partners_list(ctx: Ctx) -> AppResult<HttpResponse> {
    let partners = ctx.db(|conn| Ok(mail::partners(conn)?)).await?;
    render(&PartnersPage { l: ctx.layout("Đối tác", &[("Quản trị", "/admin/users")]), partners })
}

#[derive(Template)]
#[template(path = "hub/partner_form.html")]
struct PartnerFormPage {
    l: Layout,
    id: Option<i64>,
    f: PartnerForm,
    error: Option<String>,
}

fn partner_page(
    ctx: &Ctx,
    id: Option<i64>,
    f: PartnerForm,
    error: Option<String>,
    status: StatusCode,
) -> AppResult<HttpResponse> {
    let title = if id.is_some() { format!("Đối tác {}", f.code) } else { "Thêm đối tác".to_string() };
    render_status(status, &PartnerFormPage { l: ctx.layout(&title, &[("Đối tác", "/admin/partners")]), id, f, error })
}

async fn partner_new(ctx: Ctx) -> AppResult<HttpResponse> {
    partner_page(&ctx, None, PartnerForm { kind: "payment".into(), ..Default::default() }, None, StatusCode::OK)
}

async fn partner_edit(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let p =
        ctx.db(move |conn| mail::partners(conn)?.into_iter().find(|p| p.id == id).ok_or(AppError::NotFound)).await?;
    partner_page(&ctx, Some(id), PartnerForm::of(&p), None, StatusCode::OK)
}

async fn partner_save(ctx: Ctx, id: Option<i64>, f: PartnerForm) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let form = f.clone();
    match ctx.db(move |conn| save_partner(conn, &actor, id, form)).await {
        Ok(_) => {
            ctx.flash("success", format!("Đã lưu đối tác {}.", f.code.trim().to_uppercase()));
            Ok(redirect("/admin/partners"))
        }
        Err(AppError::Validation(m)) => partner_page(&ctx, id, f, Some(m), StatusCode::UNPROCESSABLE_ENTITY),
        Err(e) => Err(e),
    }
}

async fn partner_create(ctx: Ctx, form: web::Form<PartnerForm>) -> AppResult<HttpResponse> {
    partner_save(ctx, None, form.into_inner()).await
}

async fn partner_update(ctx: Ctx, id: web::Path<i64>, form: web::Form<PartnerForm>) -> AppResult<HttpResponse> {
    partner_save(ctx, Some(id.into_inner()), form.into_inner()).await
}

#[derive(Queryable, Debug, Clone)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub tax_code: String,
    pub address: String,
    pub search_key: String,
    pub created_at: NaiveDateTime,
}

/// Customers whose name contains `q` (case-insensitive), alphabetically.
pub fn search_customers(conn: &mut DbConn, q: &str, limit: i64) -> QueryResult<Vec<Customer>> {
    let mut query = customers::table.into_boxed();
    if !q.trim().is_empty() {
        // Folded (lower case, no diacritics) on both sides: the same on both backends.
        let key = crate::mail::inbound::classify::fold(q).replace(['%', '_'], "");
        query = query.filter(customers::search_key.like(format!("%{key}%")));
    }
    query.order(customers::name.asc()).limit(limit).load(conn)
}

#[derive(Template)]
#[template(path = "hub/customers.html")]
struct CustomersPage {
    l: Layout,
    q: String,
    rows: Vec<Customer>,
}

#[derive(Deserialize, Default)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn customers_list(ctx: Ctx, q: web::Query<Search>) -> AppResult<HttpResponse> {
    let q = q.into_inner().q;
    let query = q.clone();
    let rows = ctx.db(move |conn| Ok(search_customers(conn, &query, 200)?)).await?;
    render(&CustomersPage { l: ctx.layout("Khách hàng", &[]), q, rows })
}

#[derive(Deserialize)]
struct CustomerForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    tax_code: String,
    #[serde(default)]
    address: String,
}

async fn customer_create(ctx: Ctx, once: Once, form: web::Form<CustomerForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    if f.name.trim().is_empty() {
        ctx.flash("error", "Vui lòng nhập tên khách hàng.");
        return Ok(redirect("/customers"));
    }
    crate::web::layout::act_once(ctx, once, "/customers", "Đã thêm khách hàng.", move |conn, actor| {
        crate::db::tx(conn, |conn| {
            let id: i64 = diesel::insert_into(customers::table)
                .values((
                    customers::name.eq(f.name.trim()),
                    customers::tax_code.eq(f.tax_code.trim()),
                    customers::address.eq(f.address.trim()),
                    customers::search_key
                        .eq(crate::mail::inbound::classify::fold(&format!("{} {}", f.name, f.tax_code))),
                    customers::created_at.eq(now()),
                ))
                .returning(customers::id)
                .get_result(conn)?;
            audit::record(
                conn,
                actor,
                "customer",
                id,
                "create",
                None,
                Some(serde_json::json!({"name": f.name.trim(), "tax_code": f.tax_code.trim()})),
            )?;
            Ok(())
        })
    })
    .await
}

/// One cell of the dashboard: a state and partner with its count and oldest wait.
pub struct Cell {
    pub count: i64,
    pub oldest_days: i64,
}

pub struct DashRow {
    pub state: State,
    pub cells: Vec<Cell>,
    pub total: i64,
    pub oldest_days: i64,
}

#[derive(Template)]
#[template(path = "hub/dashboard.html")]
struct DashboardPage {
    l: Layout,
    partners: Vec<Partner>,
    rows: Vec<DashRow>,
    max_open: i64,
}

impl DashboardPage {
    /// Width in the SVG chart (0..=400) of a row's bar.
    fn bar(&self, r: &DashRow) -> i64 {
        if self.max_open == 0 { 0 } else { r.total * 400 / self.max_open }
    }

    fn y(&self, i: &usize) -> usize {
        i * 28
    }

    fn chart_height(&self) -> usize {
        self.rows.len() * 28
    }
}

async fn dashboard(ctx: Ctx) -> AppResult<HttpResponse> {
    let (partners, counts) = ctx
        .db(|conn| {
            let counts: Vec<(String, i64, i64, Option<NaiveDateTime>)> = requests::table
                .group_by((requests::state, requests::partner_id))
                .select((
                    requests::state,
                    requests::partner_id,
                    diesel::dsl::count_star(),
                    diesel::dsl::min(requests::state_since),
                ))
                .load(conn)?;
            Ok((mail::partners(conn)?, counts))
        })
        .await?;
    let t = now();
    let rows: Vec<DashRow> = State::ALL
        .iter()
        .filter(|s| !matches!(s, State::Rejected | State::Cancelled | State::Invoiced))
        .map(|s| {
            let cells: Vec<Cell> = partners
                .iter()
                .map(|p| {
                    counts
                        .iter()
                        .find(|c| c.0 == s.code() && c.1 == p.id)
                        .map(|c| Cell { count: c.2, oldest_days: c.3.map(|o| (t - o).num_days()).unwrap_or(0) })
                        .unwrap_or(Cell { count: 0, oldest_days: 0 })
                })
                .collect();
            DashRow {
                state: *s,
                total: cells.iter().map(|c| c.count).sum(),
                oldest_days: cells.iter().filter(|c| c.count > 0).map(|c| c.oldest_days).max().unwrap_or(0),
                cells,
            }
        })
        .collect();
    let max_open = rows.iter().map(|r| r.total).max().unwrap_or(0);
    render(&DashboardPage { l: ctx.layout("Bảng điều khiển", &[]), partners, rows, max_open })
}
