//! PYC pages: create from a request, the ticket with its checklist and deployment
//! data, the B5 reply, the 0 đ invoice, the lists, and the admins' note templates.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::PycState;
use super::models::{self, Item, Pyc, PycFields};
use super::service;
use crate::accounts::Role;
use crate::error::{AppError, AppResult};
use crate::fmt::LocalTime;
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, redirect, render, render_status};
use crate::web::once::{Done, Once};
use crate::web::upload::Upload;

const DESK: Access = Access::Roles(&[Role::Sale, Role::Leader]);
const LEADER: Access = Access::Roles(&[Role::Leader]);
const TECH: Access = Access::Roles(&[Role::Technician]);
const KEYS: Access = Access::Roles(&[Role::Technician, Role::Leader]);
const REPLY: Access = Access::Roles(&[Role::Sale, Role::Leader, Role::Technician]);
const INVOICE: Access = Access::Roles(&[Role::Sale, Role::Accountant]);
const ADMIN: Access = Access::Roles(&[Role::Admin]);

crate::routes! {
    GET "/requests/{id}/pyc/new" => DESK, new_form;
    POST "/requests/{id}/pyc" => DESK, create;
    GET "/pyc" => Access::Staff, list;
    GET "/pyc/export" => Access::Staff, export;
    GET "/pyc/{id}" => Access::Staff, show;
    POST "/pyc/{id}" => DESK, update;
    POST "/pyc/{id}/review" => LEADER, review;
    POST "/pyc/{id}/create" => DESK, finalize;
    POST "/pyc/{id}/technician" => DESK, assign_technician;
    POST "/pyc/{id}/items/{iid}" => TECH, tick;
    POST "/pyc/{id}/data" => TECH, save_data;
    POST "/pyc/{id}/screenshot" => TECH, upload_screenshot, Upload;
    GET "/pyc/{id}/screenshot" => Access::Staff, screenshot;
    POST "/pyc/{id}/reveal" => KEYS, reveal;
    POST "/pyc/{id}/deployed" => TECH, deployed;
    GET "/pyc/{id}/reply" => REPLY, reply_form;
    POST "/pyc/{id}/reply" => REPLY, reply;
    POST "/pyc/{id}/invoice" => INVOICE, invoice;
    GET "/admin/pyc-templates" => ADMIN, templates;
    POST "/admin/pyc-templates" => ADMIN, new_template;
    POST "/admin/pyc-templates/{id}/disable" => ADMIN, disable_template;
    POST "/admin/pyc-templates/{id}/enable" => ADMIN, enable_template;
}

#[derive(Template)]
#[template(path = "pyc/form.html")]
struct FormPage {
    l: Layout,
    /// The customer list, offered while typing the customer.
    customers: Vec<String>,
    request_id: i64,
    f: PycFields,
    template: String,
    /// The template the notes were drafted from: the post says which, so a template
    /// stopped meanwhile is refused instead of silently replaced.
    template_id: Option<i64>,
    error: Option<String>,
}

/// The PYC form as posted: its fields and the template it was drafted from.
#[derive(Deserialize)]
struct CreateForm {
    #[serde(flatten)]
    fields: PycFields,
    #[serde(default)]
    template_id: String,
}

async fn new_form(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (f, t, customers) = ctx
        .db(move |conn| {
            let (f, t) = service::draft_fields(conn, id)?;
            let customers =
                crate::hub::reference::search_customers(conn, "", 500)?.into_iter().map(|c| c.name).collect();
            Ok((f, t, customers))
        })
        .await?;
    let template = format!("{} v{}", t.kind, t.version);
    render(&FormPage {
        l: ctx.layout("Lập PYC", &[("Yêu cầu kết nối", "/requests")]),
        customers,
        request_id: id,
        f,
        template,
        template_id: Some(t.id),
        error: None,
    })
}

async fn create(ctx: Ctx, once: Once, id: web::Path<i64>, form: web::Form<CreateForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let form = form.into_inner();
    // Not a number (or absent): the newest template in use, as when the form is fresh.
    let template_id = form.template_id.trim().parse::<i64>().ok();
    let f = form.fields;
    let fields = f.clone();
    let config = ctx.state.config.clone();
    let created = crate::web::once::submit(&ctx, once, move |conn, actor| {
        let pyc = service::create_with_template(conn, &config, actor, id, &fields, template_id)?;
        Ok(Done::new(format!("/pyc/{pyc}"), "Đã lập PYC nháp; trưởng nhóm xem lại (B7) rồi tạo (B8)."))
    });
    match created.await {
        Ok(response) => Ok(response),
        Err(AppError::Validation(m)) => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &FormPage {
                l: ctx.layout("Lập PYC", &[("Yêu cầu kết nối", "/requests")]),
                customers: Vec::new(),
                request_id: id,
                f,
                template: String::new(),
                template_id,
                error: Some(m),
            },
        ),
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "pyc/show.html")]
struct ShowPage {
    l: Layout,
    p: Pyc,
    items: Vec<Item>,
    blockers: Vec<String>,
    kind: String,
    template: String,
    keys: Option<(String, String)>,
    /// Active technicians: (id, name).
    technicians: Vec<(i64, String)>,
}

impl ShowPage {
    fn technician(&self) -> String {
        self.p
            .technician_id
            .map(|id| {
                self.technicians
                    .iter()
                    .find(|t| t.0 == id)
                    .map(|t| t.1.clone())
                    .unwrap_or_else(|| format!("người dùng #{id} (không còn hoạt động)"))
            })
            .unwrap_or_else(|| "Chưa giao".into())
    }
    fn can_assign(&self) -> bool {
        self.can_desk() && !self.p.is_done()
    }
    fn is_technician(&self, id: &i64) -> bool {
        self.p.technician_id == Some(*id)
    }
    fn has(&self, roles: &[Role]) -> bool {
        self.l.user.as_ref().is_some_and(|u| u.roles.allows(roles))
    }
    fn can_desk(&self) -> bool {
        self.has(&[Role::Sale, Role::Leader])
    }
    fn can_review(&self) -> bool {
        self.has(&[Role::Leader])
    }
    fn can_deploy(&self) -> bool {
        self.has(&[Role::Technician]) && self.p.in_state(PycState::Created)
    }
    fn can_keys(&self) -> bool {
        self.has(&[Role::Technician, Role::Leader])
    }
    fn can_reply(&self) -> bool {
        self.has(&[Role::Sale, Role::Leader, Role::Technician]) && self.p.in_state(PycState::Deployed)
    }
    fn can_invoice(&self) -> bool {
        self.has(&[Role::Sale, Role::Accountant]) && self.p.in_state(PycState::Deployed)
    }
    fn done_at(&self, i: &Item) -> String {
        i.done_at.map(|t| LocalTime(t).to_string()).unwrap_or_default()
    }
    fn state(&self) -> &'static str {
        PycState::label_of(&self.p.state)
    }
    fn payment(&self) -> bool {
        self.kind == "payment"
    }
}

async fn show_page(ctx: &Ctx, id: i64, keys: Option<(String, String)>) -> AppResult<HttpResponse> {
    let (p, items, blockers, t, technicians) = ctx
        .db(move |conn| {
            let p = models::pyc(conn, id)?;
            let items = models::items(conn, id)?;
            let blockers = service::deploy_blockers(conn, &p)?;
            let t = models::template(conn, p.template_id)?;
            let techs = crate::hub::notice::staff_with_role(conn, Role::Technician)?
                .into_iter()
                .map(|u| (u.id, u.name))
                .collect();
            Ok((p, items, blockers, t, techs))
        })
        .await?;
    let title = p.number.clone();
    let page = ShowPage {
        l: ctx.layout(
            &title,
            &[("PYC", "/pyc"), (&format!("Yêu cầu #{}", p.request_id), &format!("/requests/{}", p.request_id))],
        ),
        p,
        items,
        blockers,
        template: format!("{} v{}", t.kind, t.version),
        kind: t.kind,
        keys,
        technicians,
    };
    render(&page)
}

async fn show(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    show_page(&ctx, id.into_inner(), None).await
}

#[derive(Deserialize)]
struct UpdateForm {
    #[serde(default)]
    version: i64,
    #[serde(flatten)]
    fields: PycFields,
}

async fn update(ctx: Ctx, id: web::Path<i64>, form: web::Form<UpdateForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    crate::web::layout::act(ctx, &format!("/pyc/{id}"), "Đã lưu PYC.", move |c, a| {
        service::update(c, a, id, f.version, &f.fields)
    })
    .await
}

#[derive(Deserialize)]
struct VersionForm {
    #[serde(default)]
    version: i64,
}

async fn review(ctx: Ctx, id: web::Path<i64>, form: web::Form<VersionForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let v = form.version;
    let config = ctx.state.config.clone();
    crate::web::layout::act(ctx, &format!("/pyc/{id}"), "Đã xem lại PYC (B7).", move |c, a| {
        service::advance(c, &config, a, id, v, PycState::Reviewed)
    })
    .await
}

async fn finalize(ctx: Ctx, id: web::Path<i64>, form: web::Form<VersionForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let v = form.version;
    let config = ctx.state.config.clone();
    crate::web::layout::act(
        ctx,
        &format!("/pyc/{id}"),
        "Đã tạo PYC (B8); kỹ thuật có thể triển khai.",
        move |c, a| service::advance(c, &config, a, id, v, PycState::Created),
    )
    .await
}

#[derive(Deserialize)]
struct TechnicianForm {
    #[serde(default)]
    technician_id: String,
}

async fn assign_technician(ctx: Ctx, id: web::Path<i64>, form: web::Form<TechnicianForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let raw = form.into_inner().technician_id;
    let uid = match raw.trim() {
        "" => None,
        s => match s.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                ctx.flash("error", "Kỹ thuật viên không hợp lệ.");
                return Ok(redirect(&format!("/pyc/{id}")));
            }
        },
    };
    let config = ctx.state.config.clone();
    let done = if uid.is_some() { "Đã giao kỹ thuật viên." } else { "Đã bỏ giao kỹ thuật viên." };
    crate::web::layout::act(ctx, &format!("/pyc/{id}"), done, move |c, a| {
        service::assign_technician(c, &config, a, id, uid)
    })
    .await
}

#[derive(Deserialize)]
struct TickForm {
    done: Option<String>,
}

async fn tick(ctx: Ctx, path: web::Path<(i64, i64)>, form: web::Form<TickForm>) -> AppResult<HttpResponse> {
    let (id, item) = path.into_inner();
    let done = form.done.is_some();
    crate::web::layout::act(ctx, &format!("/pyc/{id}"), "Đã cập nhật checklist.", move |c, a| {
        service::tick(c, a, id, item, done)
    })
    .await
}

#[derive(Deserialize)]
struct DataForm {
    #[serde(default)]
    pos_parent: String,
    #[serde(default)]
    pos_id: String,
    #[serde(default)]
    point_code: String,
    #[serde(default)]
    key1: String,
    #[serde(default)]
    key2: String,
}

async fn save_data(ctx: Ctx, id: web::Path<i64>, form: web::Form<DataForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let keys = ctx.state.config.keyring();
    crate::web::layout::act(ctx, &format!("/pyc/{id}"), "Đã lưu dữ liệu triển khai.", move |c, a| {
        service::save_data(c, &keys, a, id, &f.pos_parent, &f.pos_id, &f.point_code, &f.key1, &f.key2)
    })
    .await
}

async fn upload_screenshot(ctx: Ctx, id: web::Path<i64>, mut form: Upload) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let bytes = form.take_files("screenshot").pop().map(|f| f.bytes);
    if bytes.as_ref().is_some_and(|b| b.len() > service::MAX_SCREENSHOT_BYTES) {
        ctx.flash("error", "Ảnh lớn hơn 5 MB.");
        return Ok(redirect(&format!("/pyc/{id}")));
    }
    let bytes = bytes.unwrap_or_default();
    crate::web::layout::act(ctx, &format!("/pyc/{id}"), "Đã lưu ảnh kết nối.", move |c, a| {
        service::save_screenshot(c, a, id, &bytes)
    })
    .await
}

async fn screenshot(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    // The type comes from the bytes (checked again here, as for mail attachments),
    // never from the type stored beside them; the image is served sandboxed.
    let (bytes, _stored_type) = ctx.db(move |conn| Ok(models::screenshot(conn, id)?)).await?;
    let bytes = bytes.ok_or(AppError::NotFound)?;
    Ok(crate::web::inline::view(&format!("pyc-{id}-anh-chup"), bytes))
}

async fn reveal(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    let keyring = ctx.state.config.keyring();
    let keys = ctx.db(move |conn| service::reveal_keys(conn, &keyring, &actor, id)).await?;
    show_page(&ctx, id, Some(keys)).await
}

async fn deployed(ctx: Ctx, id: web::Path<i64>, form: web::Form<VersionForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let v = form.version;
    crate::web::layout::act(
        ctx,
        &format!("/pyc/{id}"),
        "Đã hoàn tất triển khai. Gửi lại thông tin cho đối tác (B5).",
        move |c, a| service::mark_deployed(c, a, id, v),
    )
    .await
}

#[derive(Template)]
#[template(path = "pyc/reply.html")]
struct ReplyPage {
    l: Layout,
    id: i64,
    version: i64,
    d: crate::hub::service::AcceptanceDraft,
    error: Option<String>,
}

async fn reply_form(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let sender = ctx.user()?.name.clone();
    let (d, version) =
        ctx.db(move |conn| Ok((service::reply_draft(conn, id, &sender)?, models::pyc(conn, id)?.version))).await?;
    render(&ReplyPage {
        l: ctx.layout("Gửi lại thông tin cho đối tác (B5)", &[("PYC", "/pyc")]),
        id,
        version,
        d,
        error: None,
    })
}

#[derive(Deserialize)]
struct ReplyForm {
    #[serde(default)]
    version: i64,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cc: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

async fn reply(ctx: Ctx, id: web::Path<i64>, form: web::Form<ReplyForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let actor = ctx.actor()?;
    let sender = ctx.user()?.name.clone();
    let outbound = ctx.state.config.outbound.clone();
    let (to, cc, subject, body, version) = (f.to.clone(), f.cc.clone(), f.subject.clone(), f.body.clone(), f.version);
    let result = ctx
        .db(move |conn| {
            // Threading comes from the conversation, never from the form.
            let mut d = service::reply_draft(conn, id, &sender)?;
            d.to = to;
            d.cc = cc;
            d.subject = subject;
            d.body = body;
            service::send_reply(conn, &outbound, &actor, id, version, &d)
        })
        .await;
    match result {
        Ok(_) => {
            ctx.flash("success", "Đã gửi lại thông tin cho đối tác (B5).");
            Ok(redirect(&format!("/pyc/{id}")))
        }
        Err(AppError::Validation(m)) | Err(AppError::Conflict(m)) => {
            let d = crate::hub::service::AcceptanceDraft {
                to: f.to,
                cc: f.cc,
                subject: f.subject,
                body: f.body,
                ..Default::default()
            };
            render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ReplyPage {
                    l: ctx.layout("Gửi lại thông tin cho đối tác (B5)", &[("PYC", "/pyc")]),
                    id,
                    version: f.version,
                    d,
                    error: Some(m),
                },
            )
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct InvoiceForm {
    #[serde(default)]
    version: i64,
    #[serde(default)]
    number: String,
    #[serde(default)]
    date: String,
}

async fn invoice(ctx: Ctx, id: web::Path<i64>, form: web::Form<InvoiceForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let Ok(date) = chrono::NaiveDate::parse_from_str(f.date.trim(), "%Y-%m-%d") else {
        ctx.flash("error", "Ngày hóa đơn không hợp lệ.");
        return Ok(redirect(&format!("/pyc/{id}")));
    };
    let at = crate::fmt::local_midnight_utc(date);
    crate::web::layout::act(
        ctx,
        &format!("/pyc/{id}"),
        "Đã ghi nhận hóa đơn 0 đ; PYC đã đóng.",
        move |c, a| service::record_invoice(c, a, id, f.version, &f.number, at),
    )
    .await
}

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub q: String,
    pub page: Option<i64>,
}

impl ListQuery {
    /// The states this query lists.
    pub fn states(&self) -> Vec<String> {
        match self.state.as_str() {
            "" => Vec::new(),
            s => vec![s.to_string()],
        }
    }

    pub fn search(&self) -> Option<&str> {
        Some(self.q.as_str()).filter(|s| !s.trim().is_empty())
    }

    /// The same filters as a query string (for pages and exports).
    pub fn query_string(&self) -> String {
        format!("state={}&q={}", urlencoding::encode(&self.state), urlencoding::encode(&self.q))
    }
}

#[derive(Template)]
#[template(path = "pyc/list.html")]
struct ListPage {
    l: Layout,
    q: ListQuery,
    rows: Vec<models::Listed>,
    total: i64,
    page: i64,
    pages: i64,
}

impl ListPage {
    fn when(&self, p: &models::Listed) -> LocalTime {
        LocalTime(p.deployed_at.unwrap_or(p.created_at))
    }

    fn page_link(&self, page: i64) -> String {
        format!("/pyc?{}&page={page}", self.q.query_string())
    }

    fn export_link(&self, format: &str) -> String {
        format!("/pyc/export?{}&format={format}", self.q.query_string())
    }
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    format: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    q: String,
}

/// The PYC list exactly as filtered on screen, every page of it.
async fn export(ctx: Ctx, req: actix_web::HttpRequest, q: web::Query<ExportQuery>) -> AppResult<HttpResponse> {
    use crate::web::export::{self, Cell};
    let q = q.into_inner();
    let format = export::Format::parse(&q.format)?;
    let list = ListQuery { state: q.state, q: q.q, page: None };
    let file = ctx
        .db(move |conn| {
            let people: Vec<(i64, String)> =
                crate::accounts::models::staff_people(conn)?.into_iter().map(|u| (u.id, u.name)).collect();
            let name = |id: Option<i64>| {
                id.and_then(|id| people.iter().find(|p| p.0 == id)).map(|p| p.1.clone()).unwrap_or_default()
            };
            let headers = [
                "Số PYC",
                "Yêu cầu",
                "Trạng thái",
                "Khách hàng",
                "Địa điểm triển khai",
                "POS Parent",
                "POS ID",
                "Mã điểm",
                "Kỹ thuật",
                "Ngày lập",
                "Ngày triển khai",
            ];
            let (states, search) = (list.states(), list.search().map(str::to_string));
            export::write(format, "PYC", &headers, |sink| {
                let mut after = 0;
                loop {
                    let batch = models::list_after(conn, &states, search.as_deref(), after, export::BATCH)?;
                    let Some(last) = batch.last() else { return Ok(()) };
                    after = last.id;
                    for p in batch {
                        sink.row(vec![
                            p.number.into(),
                            Cell::Int(p.request_id),
                            PycState::label_of(&p.state).into(),
                            p.customer_name.into(),
                            p.location.into(),
                            p.pos_parent.into(),
                            p.pos_id.into(),
                            p.point_code.into(),
                            name(p.technician_id).into(),
                            Cell::Time(p.created_at),
                            p.deployed_at.map(Cell::Time).unwrap_or_else(|| "".into()),
                        ])?;
                    }
                }
            })
        })
        .await?;
    export::download(&req, file, "pyc", format)
}

const PAGE_SIZE: i64 = 50;

async fn list(ctx: Ctx, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let query = q.clone();
    let (rows, total) = ctx
        .db(move |conn| Ok(models::list(conn, &query.states(), query.search(), (page - 1) * PAGE_SIZE, PAGE_SIZE)?))
        .await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let title = if q.state == PycState::Deployed.code() {
        "PYC đã triển khai, chưa xuất hóa đơn 0 đ"
    } else {
        "PYC"
    };
    render(&ListPage { l: ctx.layout(title, &[]), q, rows, total, page, pages })
}

#[derive(Template)]
#[template(path = "pyc/templates.html")]
struct TemplatesPage {
    l: Layout,
    rows: Vec<models::Template>,
}

async fn templates(ctx: Ctx) -> AppResult<HttpResponse> {
    let rows = ctx.db(|conn| Ok(models::templates(conn)?)).await?;
    render(&TemplatesPage { l: ctx.layout("Mẫu ghi chú PYC", &[("Quản trị", "/admin/users")]), rows })
}

#[derive(Deserialize)]
struct TemplateForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    items: String,
}

async fn new_template(ctx: Ctx, once: Once, form: web::Form<TemplateForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    crate::web::layout::act_once(
        ctx,
        once,
        "/admin/pyc-templates",
        "Đã lưu phiên bản mẫu mới; PYC cũ giữ phiên bản của mình.",
        move |conn, actor| service::save_template(conn, actor, &f.kind, &f.body, &f.items).map(|_| ()),
    )
    .await
}

async fn template_disabled(ctx: Ctx, id: i64, disabled: bool) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let label = ctx.db(move |conn| service::set_template_disabled(conn, &actor, id, disabled)).await?;
    let done = if disabled {
        format!("Đã ngừng dùng mẫu {label}: PYC mới không dùng mẫu này; PYC đã lập vẫn giữ.")
    } else {
        format!("Đã dùng lại mẫu {label}.")
    };
    ctx.flash("success", done);
    Ok(redirect("/admin/pyc-templates"))
}

async fn disable_template(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    template_disabled(ctx, id.into_inner(), true).await
}

async fn enable_template(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    template_disabled(ctx, id.into_inner(), false).await
}
