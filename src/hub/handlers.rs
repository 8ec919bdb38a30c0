//! Request pages: open (from a mail or by hand), view with timeline, move, confirm,
//! comment; the request list, "Việc của tôi", and the merchant directory.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::models::{self, RequestFilter};
use super::pages::*;
use super::service::{self, OpenRequest};
use super::state::State;
use crate::accounts::Role;
use crate::error::{AppError, AppResult};
use crate::mail::inbound::classify::Suggestions;
use crate::mail::inbound::models as mail;
use crate::web::access::Access;
use crate::web::layout::{Ctx, redirect, render, render_status};
use crate::web::once::{Done, Once};

const DESK: Access = Access::Roles(&[Role::Sale, Role::Leader]);
const LEADER: Access = Access::Roles(&[Role::Leader]);
const PAGE_SIZE: i64 = 50;

crate::routes! {
    GET "/requests" => Access::Staff, list;
    GET "/requests/export" => Access::Staff, export;
    GET "/requests/new" => DESK, new_form;
    POST "/requests" => DESK, create;
    POST "/requests/attach-mail" => DESK, attach_mail;
    GET "/requests/{id}" => Access::Staff, show;
    POST "/requests/{id}/transition" => DESK, transition;
    GET "/requests/{id}/accept" => DESK, accept_form;
    POST "/requests/{id}/accept" => DESK, accept;
    POST "/requests/{id}/confirmations" => LEADER, manual_confirmation;
    POST "/requests/{id}/confirmations/{cid}/revoke" => DESK, revoke_confirmation;
    POST "/requests/{id}/comments" => Access::Staff, comment;
    POST "/requests/{id}/assign" => DESK, assign;
    GET "/my" => Access::Staff, my_work;
    GET "/account/settings" => Access::Staff, settings;
    POST "/account/settings" => Access::Staff, save_settings;
    GET "/merchants" => Access::Staff, merchants;
    GET "/merchants/{id}" => Access::Staff, merchant;
}

#[derive(Deserialize, Default)]
struct NewQuery {
    mail: Option<i64>,
}

/// The open-request form's fields, prefilled from the mail's suggestions.
#[derive(Deserialize, Default, Clone)]
pub struct RequestForm {
    #[serde(default)]
    pub partner_id: i64,
    pub mail_id: Option<i64>,
    #[serde(default)]
    pub merchant_name: String,
    #[serde(default)]
    pub merchant_contact: String,
    #[serde(default)]
    pub merchant_phone: String,
    #[serde(default)]
    pub point_name: String,
    #[serde(default)]
    pub point_address: String,
    #[serde(default)]
    pub point_contact: String,
    #[serde(default)]
    pub point_phone: String,
    #[serde(default)]
    pub extra_points: String,
}

async fn show_form(ctx: &Ctx, form: RequestForm, error: Option<String>, status: StatusCode) -> AppResult<HttpResponse> {
    let mail_id = form.mail_id;
    let (partners, opening) = ctx
        .db(move |conn| {
            let opening = match mail_id {
                Some(id) => Some(mail::message(conn, id)?),
                None => None,
            };
            // A stopped partner takes no new requests: it is not offered.
            Ok((crate::hub::partners::active(conn)?, opening))
        })
        .await?;
    let page = NewRequestPage {
        l: ctx.layout("Mở yêu cầu kết nối", &[("Yêu cầu kết nối", "/requests")]),
        partners,
        form,
        opening,
        error,
    };
    render_status(status, &page)
}

async fn new_form(ctx: Ctx, q: web::Query<NewQuery>) -> AppResult<HttpResponse> {
    let mut form = RequestForm { mail_id: q.mail, ..Default::default() };
    if let Some(id) = q.mail {
        let m = ctx.db(move |conn| Ok(mail::message(conn, id)?)).await?;
        let s: Suggestions = serde_json::from_str(&m.suggestions).unwrap_or_default();
        let phone = s.phones.first().cloned().unwrap_or_default();
        form = RequestForm {
            partner_id: m.partner_id.unwrap_or_default(),
            mail_id: Some(id),
            merchant_name: s.merchant.clone().unwrap_or_default(),
            merchant_contact: s.contact.clone().unwrap_or_default(),
            merchant_phone: phone.clone(),
            point_name: s.point.clone().or(s.merchant.clone()).unwrap_or_default(),
            point_address: s.address.unwrap_or_default(),
            point_contact: s.contact.unwrap_or_default(),
            point_phone: phone,
            extra_points: String::new(),
        };
    }
    show_form(&ctx, form, None, StatusCode::OK).await
}

async fn create(ctx: Ctx, once: Once, form: web::Form<RequestForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    let input = OpenRequest {
        partner_id: f.partner_id,
        mail_id: f.mail_id,
        merchant_name: f.merchant_name.clone(),
        merchant_contact: f.merchant_contact.clone(),
        merchant_phone: f.merchant_phone.clone(),
        point_name: f.point_name.clone(),
        point_address: f.point_address.clone(),
        point_contact: f.point_contact.clone(),
        point_phone: f.point_phone.clone(),
        extra_points: service::parse_point_lines(&f.extra_points),
    };
    let opened = crate::web::once::submit(&ctx, once, move |conn, actor| {
        let id = service::open_request(conn, actor, &input)?;
        Ok(Done::new(format!("/requests/{id}"), format!("Đã mở yêu cầu #{id}.")))
    });
    match opened.await {
        Ok(response) => Ok(response),
        Err(AppError::Validation(msg)) => show_form(&ctx, f, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await,
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct AttachForm {
    #[serde(default)]
    mail_id: i64,
    #[serde(default)]
    request_id: String,
}

async fn attach_mail(ctx: Ctx, form: web::Form<AttachForm>) -> AppResult<HttpResponse> {
    let actor = ctx.actor()?;
    let f = form.into_inner();
    let mail_id = f.mail_id;
    let Ok(request_id) = f.request_id.trim().trim_start_matches('#').parse::<i64>() else {
        ctx.flash("error", "Vui lòng nhập số yêu cầu, ví dụ 12.");
        return Ok(redirect(&format!("/mail/{mail_id}")));
    };
    match ctx.db(move |conn| service::attach_mail(conn, &actor, request_id, mail_id)).await {
        Ok(()) => {
            ctx.flash("success", format!("Đã gắn thư vào yêu cầu #{request_id}."));
            Ok(redirect(&format!("/requests/{request_id}")))
        }
        Err(AppError::Validation(msg)) => {
            ctx.flash("error", msg);
            Ok(redirect(&format!("/mail/{mail_id}")))
        }
        Err(AppError::NotFound) => {
            ctx.flash("error", format!("Không có yêu cầu #{request_id}."));
            Ok(redirect(&format!("/mail/{mail_id}")))
        }
        Err(e) => Err(e),
    }
}

async fn show(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let data = ctx.db(move |conn| RequestView::load(conn, id)).await?;
    let title = format!("Yêu cầu #{id}");
    render(&RequestPage { l: ctx.layout(&title, &[("Yêu cầu kết nối", "/requests")]), v: data })
}

#[derive(Deserialize)]
struct TransitionForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    reason: String,
}

async fn transition(ctx: Ctx, id: web::Path<i64>, form: web::Form<TransitionForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let to = State::from_code(&f.to).ok_or_else(|| AppError::Validation("Trạng thái không hợp lệ.".into()))?;
    let done = format!("Đã chuyển yêu cầu sang “{}”.", to.label());
    crate::web::layout::act(ctx, &format!("/requests/{id}"), &done, move |conn, actor| {
        service::transition(conn, actor, id, f.version, to, &f.reason)
    })
    .await
}

#[derive(Deserialize)]
struct ConfirmationForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

async fn manual_confirmation(
    ctx: Ctx,
    once: Once,
    id: web::Path<i64>,
    form: web::Form<ConfirmationForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    crate::web::layout::act_once(
        ctx,
        once,
        &format!("/requests/{id}"),
        "Đã ghi nhận xác nhận.",
        move |conn, actor| service::manual_confirmation(conn, actor, id, &f.kind, &f.reason),
    )
    .await
}

async fn revoke_confirmation(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (id, cid) = path.into_inner();
    crate::web::layout::act(ctx, &format!("/requests/{id}"), "Đã gỡ xác nhận.", move |conn, actor| {
        service::revoke_confirmation(conn, actor, id, cid)
    })
    .await
}

#[derive(Deserialize)]
struct CommentForm {
    #[serde(default)]
    body: String,
    internal: Option<String>,
}

async fn comment(ctx: Ctx, once: Once, id: web::Path<i64>, form: web::Form<CommentForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    crate::web::layout::act_once(
        ctx,
        once,
        &format!("/requests/{id}"),
        "Đã thêm bình luận.",
        move |conn, actor| service::comment(conn, actor, id, &f.body, f.internal.is_some()),
    )
    .await
}

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub partner: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub mine: String,
    #[serde(default)]
    pub older_days: String,
    #[serde(default)]
    pub overdue: String,
    pub page: Option<i64>,
}

impl ListQuery {
    pub fn link_to_page(&self, page: i64) -> String {
        let mut s = format!("/requests?page={page}");
        for (k, v) in [
            ("state", &self.state),
            ("partner", &self.partner),
            ("q", &self.q),
            ("mine", &self.mine),
            ("older_days", &self.older_days),
            ("overdue", &self.overdue),
        ] {
            if !v.is_empty() {
                s.push_str(&format!("&{k}={}", urlencoding::encode(v)));
            }
        }
        s
    }
}

impl ListQuery {
    /// The list's filter, for the page and its export alike.
    pub fn filter(&self, uid: i64, reference: &crate::hub::Reference) -> RequestFilter {
        let partners = &reference.partners;
        RequestFilter {
            states: match self.state.as_str() {
                "" => Vec::new(),
                "open" => State::ALL.iter().filter(|s| !s.is_closed()).map(|s| s.code().to_string()).collect(),
                s => vec![s.to_string()],
            },
            partner_id: partners.iter().find(|p| p.code == self.partner).map(|p| p.id),
            search: Some(self.q.clone()).filter(|s| !s.trim().is_empty()),
            assignee_id: (!self.mine.is_empty()).then_some(uid),
            older_than: self
                .older_days
                .trim()
                .parse::<i64>()
                .ok()
                // A century is as old as any request can be; more would overflow the date.
                .map(|d| crate::db::now() - chrono::Duration::days(d.clamp(0, 36_500))),
            overdue: if self.overdue.is_empty() { None } else { Some(reference.thresholds.cutoffs(crate::db::now())) },
        }
    }

    /// The same filters as a query string, for the export links.
    pub fn export_link(&self, format: &str) -> String {
        self.link_to_page(1).replacen("/requests?page=1", &format!("/requests/export?format={format}"), 1)
    }
}

async fn list(ctx: Ctx, q: web::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let uid = ctx.user()?.id;
    let query = q.clone();
    let reference = ctx.state.reference.clone();
    let rows = ctx
        .db(move |conn| {
            let reference = reference.get(conn)?;
            let filter = query.filter(uid, &reference);
            RequestRows::load(conn, &filter, (page - 1) * PAGE_SIZE, PAGE_SIZE, reference)
        })
        .await?;
    let pages = ((rows.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    render(&RequestListPage { l: ctx.layout("Yêu cầu kết nối", &[]), q, rows, page, pages })
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    list: ListQuery,
}

/// The request list exactly as filtered on screen, every page of it.
async fn export(ctx: Ctx, req: actix_web::HttpRequest, q: web::Query<ExportQuery>) -> AppResult<HttpResponse> {
    use crate::web::export::{self, Cell};
    let q = q.into_inner();
    let format = export::Format::parse(&q.format)?;
    let uid = ctx.user()?.id;
    let reference = ctx.state.reference.clone();
    let file = ctx
        .db(move |conn| {
            let reference = reference.get(conn)?;
            let filter = q.list.filter(uid, &reference);
            let (partners, thresholds) = (&reference.partners, &reference.thresholds);
            let people: Vec<(i64, String)> =
                crate::accounts::models::staff_people(conn)?.into_iter().map(|u| (u.id, u.name)).collect();
            let headers = [
                "Số yêu cầu",
                "Đối tác",
                "Merchant",
                "Trạng thái",
                "Vào trạng thái lúc",
                "Ngày mở",
                "Người phụ trách",
                "Quá hạn",
            ];
            export::write(format, "Yêu cầu", &headers, |sink| {
                let mut after = 0;
                let now = crate::db::now();
                loop {
                    let batch = models::requests_after(conn, &filter, after, export::BATCH)?;
                    let Some(last) = batch.last() else { return Ok(()) };
                    after = last.id;
                    let ids: Vec<i64> = batch.iter().map(|r| r.merchant_id).collect();
                    let merchants = models::merchant_names(conn, &ids)?;
                    for r in &batch {
                        let name = |id: Option<i64>| {
                            id.and_then(|id| people.iter().find(|p| p.0 == id)).map(|p| p.1.clone()).unwrap_or_default()
                        };
                        sink.row(vec![
                            Cell::Int(r.id),
                            partners
                                .iter()
                                .find(|p| p.id == r.partner_id)
                                .map(|p| p.code.as_str())
                                .unwrap_or("")
                                .into(),
                            merchants.get(&r.merchant_id).cloned().unwrap_or_default().into(),
                            super::pages::state_label(&r.state).into(),
                            Cell::Time(r.state_since),
                            Cell::Time(r.opened_on),
                            name(r.assignee_id).into(),
                            if thresholds.is_overdue(&r.state, r.state_since, now) { "Có" } else { "" }.into(),
                        ])?;
                    }
                }
            })
        })
        .await?;
    export::download(&req, file, "yeu-cau-ket-noi", format)
}

async fn my_work(ctx: Ctx) -> AppResult<HttpResponse> {
    let user = ctx.user()?.clone();
    let (uid, roles) = (user.id, user.roles);
    let reference = ctx.state.reference.clone();
    let (work, to_triage) = ctx
        .db(move |conn| {
            let reference = reference.get(conn)?;
            // Sales and leaders also triage the partner mail no request has taken yet.
            let to_triage = if roles.allows(&[Role::Sale, Role::Leader]) {
                let filter = mail::InboxFilter { status: Some("new".into()), ..Default::default() };
                Some(mail::inbox_count(conn, &filter)?)
            } else {
                None
            };
            Ok((MyWork::load(conn, uid, roles, &reference)?, to_triage))
        })
        .await?;
    render(&MyWorkPage { l: ctx.layout("Việc của tôi", &[]), sections: work.sections, pycs: work.pycs, to_triage })
}

#[derive(Deserialize, Default)]
struct MerchantQuery {
    #[serde(default)]
    q: String,
    page: Option<i64>,
}

async fn merchants(ctx: Ctx, q: web::Query<MerchantQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let key = crate::mail::inbound::classify::fold(&q.q);
    let (rows, total) =
        ctx.db(move |conn| Ok(models::search_merchants(conn, &key, (page - 1) * PAGE_SIZE, PAGE_SIZE)?)).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    render(&MerchantsPage { l: ctx.layout("Merchant và điểm bán", &[]), q: q.q, rows, total, page, pages })
}

async fn merchant(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (merchant, points, business) = ctx
        .db(move |conn| {
            Ok((
                models::merchant(conn, id)?,
                models::points_of(conn, id)?,
                crate::business::models::business_of_merchant(conn, id)?.map(|b| (b.id, b.name)),
            ))
        })
        .await?;
    let can_link = ctx.user()?.roles.allows(&[crate::accounts::Role::Sale, crate::accounts::Role::Leader]);
    render(&MerchantPage {
        l: ctx.layout(&merchant.name.clone(), &[("Merchant và điểm bán", "/merchants")]),
        merchant,
        points,
        business,
        can_link,
    })
}

#[derive(Deserialize, Default, Clone)]
pub struct AcceptForm {
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub cc: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
}

async fn accept_page(ctx: &Ctx, id: i64, form: Option<AcceptForm>, error: Option<String>) -> AppResult<HttpResponse> {
    let sender = ctx.user()?.name.clone();
    let (r, draft, missing) = ctx
        .db(move |conn| {
            let r = models::request(conn, id)?;
            let missing = service::missing(conn, &r)?;
            Ok((r.clone(), service::acceptance_draft(conn, id, &sender)?, missing))
        })
        .await?;
    let f = form.unwrap_or(AcceptForm {
        version: r.version,
        to: draft.to.clone(),
        cc: draft.cc.clone(),
        subject: draft.subject.clone(),
        body: draft.body.clone(),
    });
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = AcceptPage {
        l: ctx.layout(
            "Mail chấp nhận mở cổng (B2)",
            &[("Yêu cầu kết nối", "/requests"), (&format!("#{id}"), &format!("/requests/{id}"))],
        ),
        id,
        f,
        in_reply_to: draft.in_reply_to,
        missing,
        error,
    };
    render_status(status, &page)
}

async fn accept_form(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    accept_page(&ctx, id.into_inner(), None, None).await
}

async fn accept(ctx: Ctx, id: web::Path<i64>, form: web::Form<AcceptForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let actor = ctx.actor()?;
    let sender = ctx.user()?.name.clone();
    let outbound = ctx.state.config.outbound.clone();
    let posted = f.clone();
    let result = ctx
        .db(move |conn| {
            // Threading comes from the conversation, never from the form.
            let mut draft = service::acceptance_draft(conn, id, &sender)?;
            draft.to = posted.to;
            draft.cc = posted.cc;
            draft.subject = posted.subject;
            draft.body = posted.body;
            service::accept(conn, &outbound, &actor, id, posted.version, &draft)
        })
        .await;
    match result {
        Ok(_) => {
            ctx.flash("success", "Đã chấp nhận yêu cầu; mail chấp nhận đã vào hàng đợi gửi.");
            Ok(redirect(&format!("/requests/{id}")))
        }
        Err(AppError::Validation(m)) | Err(AppError::Conflict(m)) => accept_page(&ctx, id, Some(f), Some(m)).await,
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct AssignForm {
    #[serde(default)]
    assignee_id: i64,
}

async fn assign(ctx: Ctx, id: web::Path<i64>, form: web::Form<AssignForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let uid = form.into_inner().assignee_id;
    let config = ctx.state.config.clone();
    crate::web::layout::act(ctx, &format!("/requests/{id}"), "Đã giao yêu cầu.", move |conn, actor| {
        service::assign(conn, &config, actor, id, uid)
    })
    .await
}

#[derive(askama::Template)]
#[template(path = "hub/settings.html")]
struct SettingsPage {
    l: crate::web::layout::Layout,
    p: super::notice::Prefs,
}

/// The staff member's own page: which desk mails they get.
async fn settings(ctx: Ctx) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let p = ctx.db(move |conn| Ok(super::notice::prefs(conn, uid)?)).await?;
    render(&SettingsPage { l: ctx.layout("Cài đặt của tôi", &[]), p })
}

/// Unticked boxes are absent from the form: absent means off.
#[derive(Deserialize)]
struct SettingsForm {
    on_assign: Option<String>,
    on_review: Option<String>,
    on_pyc_created: Option<String>,
    on_digest: Option<String>,
}

async fn save_settings(ctx: Ctx, form: web::Form<SettingsForm>) -> AppResult<HttpResponse> {
    let uid = ctx.user()?.id;
    let f = form.into_inner();
    let p = super::notice::Prefs {
        on_assign: f.on_assign.is_some(),
        on_review: f.on_review.is_some(),
        on_pyc_created: f.on_pyc_created.is_some(),
        on_digest: f.on_digest.is_some(),
    };
    crate::web::layout::act(ctx, "/account/settings", "Đã lưu cài đặt thư.", move |conn, actor| {
        super::notice::save_prefs(conn, actor, uid, p)
    })
    .await
}
