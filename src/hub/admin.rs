//! Pages of the desk's reference data (partners, customers, merchant and point
//! edits) and the dashboard. Partners are data: adding one needs no code. The
//! queries and the audit are in [`super::reference`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::reference::{self, Customer, CustomerForm, MerchantForm, PartnerForm, PointForm};
use super::state::State;
use crate::accounts::Role;
use crate::db::now;
use crate::error::{AppError, AppResult};
use crate::fmt::LocalTime;
use crate::hub::partners::Partner;
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
    POST "/admin/partners/{id}/disable" => ADMIN, partner_disable;
    POST "/admin/partners/{id}/enable" => ADMIN, partner_enable;
    GET "/customers" => DESK, customers_list;
    POST "/customers" => DESK, customer_create;
    GET "/customers/{id}/edit" => DESK, customer_edit;
    POST "/customers/{id}/edit" => DESK, customer_update;
    GET "/merchants/{id}/edit" => DESK, merchant_edit;
    POST "/merchants/{id}/edit" => DESK, merchant_update;
    GET "/points/{id}/edit" => DESK, point_edit;
    POST "/points/{id}/edit" => DESK, point_update;
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

#[derive(Template)]
#[template(path = "hub/partners.html")]
struct PartnersPage {
    l: Layout,
    partners: Vec<Partner>,
}

async fn partners_list(ctx: Ctx) -> AppResult<HttpResponse> {
    let partners = ctx.db(|conn| Ok(crate::hub::partners::all(conn)?)).await?;
    render(&PartnersPage { l: ctx.layout("Đối tác", &[("Quản trị", "/admin/users")]), partners })
}

#[derive(Template)]
#[template(path = "hub/partner_form.html")]
struct PartnerFormPage {
    l: Layout,
    id: Option<i64>,
    /// When the partner being edited was stopped.
    disabled_at: Option<LocalTime>,
    f: PartnerForm,
    error: Option<String>,
}

fn partner_page(
    ctx: &Ctx,
    p: Option<&Partner>,
    f: PartnerForm,
    error: Option<String>,
    status: StatusCode,
) -> AppResult<HttpResponse> {
    let title = if p.is_some() { format!("Đối tác {}", f.code) } else { "Thêm đối tác".to_string() };
    render_status(
        status,
        &PartnerFormPage {
            l: ctx.layout(&title, &[("Đối tác", "/admin/partners")]),
            id: p.map(|p| p.id),
            disabled_at: p.and_then(|p| p.disabled_at).map(LocalTime),
            f,
            error,
        },
    )
}

async fn partner_new(ctx: Ctx) -> AppResult<HttpResponse> {
    partner_page(&ctx, None, PartnerForm { kind: "payment".into(), ..Default::default() }, None, StatusCode::OK)
}

async fn partner_edit(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let p = ctx.db(move |conn| Ok(crate::hub::partners::find(conn, id)?)).await?;
    partner_page(&ctx, Some(&p), PartnerForm::of(&p), None, StatusCode::OK)
}

async fn partner_save(ctx: Ctx, id: Option<i64>, f: PartnerForm) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let form = f.clone();
    match ctx.db(move |conn| reference::save_partner(conn, &actor, id, form)).await {
        Ok(_) => {
            ctx.flash("success", format!("Đã lưu đối tác {}.", f.code.trim().to_uppercase()));
            Ok(redirect("/admin/partners"))
        }
        Err(AppError::Validation(m)) => {
            let p = match id {
                Some(id) => Some(ctx.db(move |conn| Ok(crate::hub::partners::find(conn, id)?)).await?),
                None => None,
            };
            partner_page(&ctx, p.as_ref(), f, Some(m), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

async fn partner_disabled(ctx: Ctx, id: i64, disabled: bool) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let code = ctx.db(move |conn| reference::set_partner_disabled(conn, &actor, id, disabled)).await?;
    let done = if disabled {
        format!("Đã ngừng dùng đối tác {code}: không còn mở yêu cầu mới; thư và yêu cầu cũ vẫn giữ.")
    } else {
        format!("Đã dùng lại đối tác {code}.")
    };
    ctx.flash("success", done);
    Ok(redirect(&format!("/admin/partners/{id}")))
}

async fn partner_disable(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    partner_disabled(ctx, id.into_inner(), true).await
}

async fn partner_enable(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    partner_disabled(ctx, id.into_inner(), false).await
}

async fn partner_create(ctx: Ctx, form: web::Form<PartnerForm>) -> AppResult<HttpResponse> {
    partner_save(ctx, None, form.into_inner()).await
}

async fn partner_update(ctx: Ctx, id: web::Path<i64>, form: web::Form<PartnerForm>) -> AppResult<HttpResponse> {
    partner_save(ctx, Some(id.into_inner()), form.into_inner()).await
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
    let rows = ctx.db(move |conn| Ok(reference::search_customers(conn, &query, 200)?)).await?;
    render(&CustomersPage { l: ctx.layout("Khách hàng", &[]), q, rows })
}

async fn customer_create(ctx: Ctx, once: Once, form: web::Form<CustomerForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    crate::web::layout::act_once(ctx, once, "/customers", "Đã thêm khách hàng.", move |conn, actor| {
        reference::save_customer(conn, actor, None, &f).map(|_| ())
    })
    .await
}

/// One text box of an edit form.
pub struct Field {
    pub label: &'static str,
    pub name: &'static str,
    pub value: String,
    pub required: bool,
}

fn field(label: &'static str, name: &'static str, value: &str) -> Field {
    Field { label, name, value: value.to_string(), required: false }
}

fn required(label: &'static str, name: &'static str, value: &str) -> Field {
    Field { required: true, ..field(label, name, value) }
}

/// The edit form of a merchant, point or customer: the same boxes, different fields.
#[derive(Template)]
#[template(path = "hub/edit_form.html")]
struct EditPage {
    l: Layout,
    action: String,
    back: String,
    fields: Vec<Field>,
    error: Option<String>,
}

struct Edit<'a> {
    title: String,
    crumbs: Vec<(&'a str, String)>,
    action: String,
    back: String,
    fields: Vec<Field>,
}

fn edit_page(ctx: &Ctx, e: Edit<'_>, error: Option<AppError>) -> AppResult<HttpResponse> {
    let (status, error) = match error {
        None => (StatusCode::OK, None),
        Some(AppError::Validation(m)) => (StatusCode::UNPROCESSABLE_ENTITY, Some(m)),
        Some(AppError::Conflict(m)) => (StatusCode::CONFLICT, Some(m)),
        Some(other) => return Err(other),
    };
    let crumbs: Vec<(&str, &str)> = e.crumbs.iter().map(|(a, b)| (*a, b.as_str())).collect();
    render_status(
        status,
        &EditPage { l: ctx.layout(&e.title, &crumbs), action: e.action, back: e.back, fields: e.fields, error },
    )
}

/// Saves an edit form; on a refused edit the form comes back with what was typed.
async fn edit_save(
    ctx: Ctx,
    page: Edit<'_>,
    done: &str,
    save: impl FnOnce(&mut crate::db::DbConn, &crate::audit::Actor) -> AppResult<()> + Send + 'static,
) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    match ctx.db(move |conn| save(conn, &actor)).await {
        Ok(()) => {
            ctx.flash("success", done.to_string());
            Ok(redirect(&page.back))
        }
        Err(e) => edit_page(&ctx, page, Some(e)),
    }
}

fn merchant_edit_page(id: i64, title: &str, f: &MerchantForm) -> Edit<'static> {
    Edit {
        title: format!("Sửa merchant {title}"),
        crumbs: vec![("Merchant và điểm bán", "/merchants".into()), ("Merchant", format!("/merchants/{id}"))],
        action: format!("/merchants/{id}/edit"),
        back: format!("/merchants/{id}"),
        fields: vec![
            required("Tên merchant", "name", &f.name),
            field("Người liên hệ", "contact_name", &f.contact_name),
            field("Điện thoại", "phone", &f.phone),
            field("Email", "email", &f.email),
        ],
    }
}

async fn merchant_edit(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let m = ctx.db(move |conn| Ok(super::models::merchant(conn, id)?)).await?;
    edit_page(&ctx, merchant_edit_page(id, &m.name, &MerchantForm::of(&m)), None)
}

async fn merchant_update(ctx: Ctx, id: web::Path<i64>, form: web::Form<MerchantForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let page = merchant_edit_page(id, &f.name, &f);
    edit_save(ctx, page, "Đã lưu merchant.", move |conn, actor| reference::update_merchant(conn, actor, id, &f)).await
}

fn point_edit_page(p: &super::models::Point, f: &PointForm) -> Edit<'static> {
    let m = p.merchant_id;
    Edit {
        title: format!("Sửa điểm {}", p.name),
        crumbs: vec![("Merchant và điểm bán", "/merchants".into()), ("Merchant", format!("/merchants/{m}"))],
        action: format!("/points/{}/edit", p.id),
        back: format!("/merchants/{m}"),
        fields: vec![
            required("Tên điểm", "name", &f.name),
            field("Địa chỉ", "address", &f.address),
            field("Người liên hệ", "contact_name", &f.contact_name),
            field("Điện thoại", "phone", &f.phone),
            field("POS Parent", "pos_parent", &f.pos_parent),
            field("POS ID", "pos_id", &f.pos_id),
            field("Mã điểm", "point_code", &f.point_code),
        ],
    }
}

async fn point_edit(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let p = ctx.db(move |conn| Ok(super::models::point(conn, id)?)).await?;
    edit_page(&ctx, point_edit_page(&p, &PointForm::of(&p)), None)
}

async fn point_update(ctx: Ctx, id: web::Path<i64>, form: web::Form<PointForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let p = ctx.db(move |conn| Ok(super::models::point(conn, id)?)).await?;
    let page = point_edit_page(&p, &f);
    edit_save(ctx, page, "Đã lưu điểm.", move |conn, actor| reference::update_point(conn, actor, id, &f)).await
}

fn customer_edit_page(c: &Customer, f: &CustomerForm) -> Edit<'static> {
    Edit {
        title: format!("Sửa khách hàng {}", c.name),
        crumbs: vec![("Khách hàng", "/customers".into())],
        action: format!("/customers/{}/edit", c.id),
        back: "/customers".into(),
        fields: vec![
            required("Tên công ty", "name", &f.name),
            field("Mã số thuế", "tax_code", &f.tax_code),
            field("Địa chỉ", "address", &f.address),
        ],
    }
}

async fn customer_edit(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let c = ctx.db(move |conn| Ok(reference::customer(conn, id)?)).await?;
    edit_page(&ctx, customer_edit_page(&c, &CustomerForm::of(&c)), None)
}

async fn customer_update(ctx: Ctx, id: web::Path<i64>, form: web::Form<CustomerForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let c = ctx.db(move |conn| Ok(reference::customer(conn, id)?)).await?;
    let page = customer_edit_page(&c, &f);
    edit_save(ctx, page, "Đã lưu khách hàng.", move |conn, actor| {
        reference::save_customer(conn, actor, Some(id), &f).map(|_| ())
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
    reference: std::sync::Arc<crate::hub::Reference>,
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
    let reference = ctx.state.reference.clone();
    let (reference, counts) =
        ctx.db(move |conn| Ok((reference.get(conn)?, super::models::counts_by_state_and_partner(conn)?))).await?;
    let t = now();
    let rows: Vec<DashRow> = State::ALL
        .iter()
        .filter(|s| !matches!(s, State::Rejected | State::Cancelled | State::Invoiced))
        .map(|s| {
            let cells: Vec<Cell> = reference
                .partners
                .iter()
                .map(|p| {
                    counts
                        .iter()
                        .find(|c| c.state == s.code() && c.partner_id == p.id)
                        .map(|c| Cell {
                            count: c.count,
                            oldest_days: c.oldest.map(|o| (t - o).num_days()).unwrap_or(0),
                        })
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
    render(&DashboardPage { l: ctx.layout("Bảng điều khiển", &[]), reference, rows, max_open })
}
