//! The partner-mail inbox ("Hộp thư đối tác"), uploads, keyword rules, and the
//! token-authenticated `POST /inbound/mail` for an MTA pipe or a provider webhook.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::Deserialize;

use super::batch::Batcher;
use super::models::{self, InboxFilter};
use super::pages::*;
use super::service;
use crate::accounts::Role;
use crate::error::{AppError, AppResult};
use crate::fmt::local_midnight_utc;
use crate::web::AppState;
use crate::web::access::Access;
use crate::web::inline::Preview;
use crate::web::layout::{Ctx, redirect, render};
use crate::web::once::Once;
use crate::web::upload::Upload;

const MAIL: Access = Access::Roles(&[Role::Sale, Role::Leader]);
const ADMIN: Access = Access::Roles(&[Role::Admin]);
const PAGE_SIZE: i64 = 50;

crate::routes! {
    GET "/mail" => MAIL, inbox;
    GET "/mail/export" => MAIL, export;
    GET "/mail/upload" => MAIL, upload_form;
    POST "/mail/upload" => MAIL, upload, Upload;
    GET "/mail/unreadable" => MAIL, unreadable;
    POST "/mail/blobs/{id}/retry" => MAIL, retry_blob;
    GET "/mail/blobs/{id}/raw" => MAIL, raw_blob;
    GET "/mail/{id}" => MAIL, show;
    GET "/mail/{id}/attachments/{aid}" => MAIL, attachment;
    GET "/mail/{id}/attachments/{aid}/view" => MAIL, view_attachment;
    POST "/mail/{id}/not-relevant" => MAIL, not_relevant;
    POST "/mail/{id}/reopen" => MAIL, reopen;
    POST "/mail/{id}/reclassify" => MAIL, reclassify;
    GET "/admin/mail-rules" => ADMIN, rules;
    POST "/admin/mail-rules" => ADMIN, add_rule;
    POST "/admin/mail-rules/{id}/toggle" => ADMIN, toggle_rule;
    POST "/admin/mail-rules/{id}/delete" => ADMIN, delete_rule;
    POST "/inbound/mail" => Access::Public, inbound;
}

#[derive(Deserialize, Default, Clone)]
pub struct InboxQuery {
    #[serde(default)]
    pub partner: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub unassigned: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub q: String,
    pub page: Option<i64>,
}

impl InboxQuery {
    pub fn link_to_page(&self, page: i64) -> String {
        let mut s = format!("/mail?page={page}");
        for (k, v) in [
            ("partner", &self.partner),
            ("kind", &self.kind),
            ("status", &self.status),
            ("unassigned", &self.unassigned),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ] {
            if !v.is_empty() {
                s.push_str(&format!("&{k}={}", urlencoding::encode(v)));
            }
        }
        s
    }

    pub fn export_link(&self, format: &str) -> String {
        self.link_to_page(1).replacen("/mail?page=1", &format!("/mail/export?format={format}"), 1)
    }

    /// The inbox's filter, for the page and its export alike.
    pub fn filter(&self, partners: &[crate::hub::partners::Brief]) -> InboxFilter {
        let date = |s: &str| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
        InboxFilter {
            partner_id: partners.iter().find(|p| p.code == self.partner).map(|p| p.id),
            kind: Some(self.kind.clone()).filter(|s| !s.is_empty()),
            // The inbox shows what is left to do unless asked otherwise.
            status: match self.status.as_str() {
                "" => Some("new".to_string()),
                "all" => None,
                s => Some(s.to_string()),
            },
            unassigned: !self.unassigned.is_empty(),
            from: date(&self.from).map(local_midnight_utc),
            until: date(&self.to).and_then(|d| d.succ_opt()).map(local_midnight_utc),
            search: Some(self.q.trim().to_string()).filter(|s| !s.is_empty()),
        }
    }
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    list: InboxQuery,
}

/// The inbox exactly as filtered on screen, every page of it.
async fn export(ctx: Ctx, req: HttpRequest, q: web::Query<ExportQuery>) -> AppResult<HttpResponse> {
    use crate::web::export::{self, Cell};
    let q = q.into_inner();
    let format = export::Format::parse(&q.format)?;
    let reference = ctx.state.reference.clone();
    let file = ctx
        .db(move |conn| {
            let reference = reference.get(conn)?;
            let partners = &reference.partners;
            let filter = q.list.filter(partners);
            let headers = ["Thời gian", "Người gửi", "Địa chỉ", "Tiêu đề", "Đối tác", "Loại thư", "Trạng thái"];
            export::write(format, "Hộp thư", &headers, |sink| {
                let mut after = 0;
                loop {
                    let batch = models::inbox_after(conn, &filter, after, export::BATCH)?;
                    let Some(last) = batch.last() else { return Ok(()) };
                    after = last.id;
                    for m in batch {
                        let partner = m.partner_id.and_then(|id| partners.iter().find(|p| p.id == id));
                        sink.row(vec![
                            Cell::Time(m.sent_at.unwrap_or(m.created_at)),
                            m.from_name.into(),
                            m.from_addr.into(),
                            m.subject.into(),
                            partner.map(|p| p.code.clone()).unwrap_or_default().into(),
                            kind_label(&m.kind).into(),
                            message_status_label(&m.status).into(),
                        ])?;
                    }
                }
            })
        })
        .await?;
    export::download(&req, file, "hop-thu-doi-tac", format)
}

async fn inbox(ctx: Ctx, q: web::Query<InboxQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let query = q.clone();
    let reference = ctx.state.reference.clone();
    let (rows, total, reference, problems) = ctx
        .db(move |conn| {
            let reference = reference.get(conn)?;
            let filter = query.filter(&reference.partners);
            let (rows, total) = models::inbox(conn, &filter, (page - 1) * PAGE_SIZE, PAGE_SIZE, &reference.partners)?;
            let problems = models::problem_blob_count(conn)?;
            Ok((rows, total, reference, problems))
        })
        .await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    render(&InboxPage {
        l: ctx.layout("Hộp thư đối tác", &[]), q, rows, total, page, pages, reference, problems
    })
}

async fn upload_form(ctx: Ctx) -> AppResult<HttpResponse> {
    render(&UploadPage {
        l: ctx.layout("Tải thư lên", &[("Hộp thư đối tác", "/mail")]), reports: Vec::new()
    })
}

async fn upload(ctx: Ctx, mut form: Upload) -> AppResult<HttpResponse> {
    let limit = ctx.state.config.mail.max_message_bytes;
    // A file over the per-message limit is reported, not processed; the others go on.
    let files: Vec<(String, Result<Vec<u8>, String>)> = form
        .take_files("files")
        .into_iter()
        .map(|f| {
            let content = if f.bytes.len() > limit {
                Err(format!("Tệp lớn hơn giới hạn {} MB nên không được nhận.", limit / (1024 * 1024)))
            } else {
                Ok(f.bytes)
            };
            (f.name, content)
        })
        .collect();
    if files.is_empty() {
        return Err(AppError::Validation("Chưa chọn tệp .eml nào.".into()));
    }
    let cfg = ctx.state.config.mail.clone();
    let reports = ctx
        .db(move |conn| {
            // The accepted files are stored in batches; each report goes back to its file's place.
            let mut out: Vec<service::IngestReport> = Vec::with_capacity(files.len());
            let known = service::Known::load(conn)?;
            let mut pending: Batcher<usize> = Batcher::new();
            for (name, content) in files {
                match content {
                    Ok(raw) => {
                        let place = out.len();
                        out.push(service::IngestReport::default());
                        if pending.push(place, raw, Some(name)) {
                            for (at, r) in pending.ingest(conn, &cfg, &known, "upload")? {
                                out[at] = r;
                            }
                        }
                    }
                    Err(e) => out.push(service::IngestReport {
                        file: Some(name),
                        status: "rejected".into(),
                        error: Some(e),
                        ..Default::default()
                    }),
                }
            }
            for (at, r) in pending.ingest(conn, &cfg, &known, "upload")? {
                out[at] = r;
            }
            Ok(out)
        })
        .await?;
    render(&UploadPage { l: ctx.layout("Tải thư lên", &[("Hộp thư đối tác", "/mail")]), reports })
}

async fn unreadable(ctx: Ctx) -> AppResult<HttpResponse> {
    let blobs = ctx.db(|conn| Ok(models::problem_blobs(conn)?)).await?;
    render(&UnreadablePage {
        l: ctx.layout("Thư chưa xử lý được", &[("Hộp thư đối tác", "/mail")]), blobs
    })
}

async fn retry_blob(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    let cfg = ctx.state.config.mail.clone();
    let report = ctx.db(move |conn| service::process_blob(conn, &cfg, id, &actor)).await;
    match report {
        Ok(r) if r.status == "stored" => {
            ctx.flash("success", "Đã xử lý lại thư thành công.");
            Ok(redirect(&format!("/mail/{}", r.id.unwrap_or_default())))
        }
        Ok(r) => {
            ctx.flash("error", format!("Vẫn chưa xử lý được: {}", r.error.unwrap_or_default()));
            Ok(redirect("/mail/unreadable"))
        }
        Err(AppError::Validation(m)) => {
            ctx.flash("error", m);
            Ok(redirect("/mail/unreadable"))
        }
        Err(e) => Err(e),
    }
}

fn download(name: &str, content_type: &str, bytes: Vec<u8>) -> HttpResponse {
    let cd = header::ContentDisposition {
        disposition: header::DispositionType::Attachment,
        parameters: vec![header::DispositionParam::Filename(name.to_string())],
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type.to_string()))
        .insert_header(cd)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes)
}

async fn raw_blob(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let raw = ctx.db(move |conn| Ok(models::blob_raw(conn, id)?)).await?;
    Ok(download(&format!("thu-{id}.eml"), "message/rfc822", raw))
}

#[derive(Deserialize)]
struct ShowQuery {
    #[serde(default)]
    images: Option<String>,
}

async fn show(ctx: Ctx, id: web::Path<i64>, q: web::Query<ShowQuery>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let show_images = q.images.as_deref() == Some("1");
    let (message, thread, messages, attachments, heads, partners) = ctx
        .db(move |conn| {
            let m = models::message(conn, id)?;
            let thread = models::thread(conn, m.thread_id)?;
            let messages = models::thread_messages(conn, m.thread_id)?;
            let ids: Vec<i64> = messages.iter().map(|x| x.id).collect();
            let attachments = models::attachments_of(conn, &ids)?;
            let heads = models::attachment_heads(conn, &ids, crate::web::inline::HEAD_BYTES)?;
            Ok((m, thread, messages, attachments, heads, crate::hub::partners::all(conn)?))
        })
        .await?;
    let previews: Vec<(i64, Preview)> =
        heads.iter().filter_map(|(aid, head)| crate::web::inline::sniff(head).map(|p| (*aid, p))).collect();
    let frames = previews.iter().any(|(_, p)| *p == Preview::Pdf);
    let title =
        if message.subject.is_empty() { "(không có tiêu đề)".to_string() } else { message.subject.clone() };
    let mut resp = render(&MessagePage {
        l: ctx.layout(&title, &[("Hộp thư đối tác", "/mail")]),
        suggestions: serde_json::from_str(&message.suggestions).unwrap_or_default(),
        message,
        thread,
        messages,
        attachments,
        partners,
        show_images,
        previews,
    })?;
    if show_images || frames {
        let mut csp = crate::web::CONTENT_SECURITY_POLICY.to_string();
        if show_images {
            // The reader chose to load this mail's remote images: this page alone may.
            csp = csp.replace("img-src 'self' data:", "img-src 'self' data: https: http:");
        }
        if frames {
            // A PDF attachment is previewed in a frame of ours (its response sandboxed by its own
            // policy): this page alone frames.
            csp = csp.replace("frame-src 'none'", "frame-src 'self'");
        }
        if let Ok(v) = header::HeaderValue::from_str(&csp) {
            resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    Ok(resp)
}

async fn attachment_bytes(ctx: &Ctx, path: web::Path<(i64, i64)>) -> AppResult<(String, Vec<u8>)> {
    let (mid, aid) = path.into_inner();
    let (info, content) = ctx.db(move |conn| Ok(models::attachment_content(conn, mid, aid)?)).await?;
    let content = content.ok_or_else(|| {
        AppError::Validation(info.omitted_reason.clone().unwrap_or_else(|| "Tệp không có nội dung.".into()))
    })?;
    Ok((info.file_name, content))
}

/// A download: the sender's declared type is not trusted, the bytes go as opaque.
async fn attachment(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (name, content) = attachment_bytes(&ctx, path).await?;
    Ok(crate::web::inline::download(&name, content))
}

/// For the preview in the mail page: inline only when the bytes are an image or a PDF.
async fn view_attachment(ctx: Ctx, path: web::Path<(i64, i64)>) -> AppResult<HttpResponse> {
    let (name, content) = attachment_bytes(&ctx, path).await?;
    Ok(crate::web::inline::view(&name, content))
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

async fn not_relevant(ctx: Ctx, id: web::Path<i64>, form: web::Form<ReasonForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    let reason = form.into_inner().reason;
    match ctx.db(move |conn| service::mark_not_relevant(conn, &actor, id, &reason)).await {
        Ok(()) => ctx.flash("success", "Đã đánh dấu thư không liên quan."),
        Err(AppError::Validation(m)) => ctx.flash("error", m),
        Err(e) => return Err(e),
    }
    Ok(redirect(&format!("/mail/{id}")))
}

async fn reopen(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    ctx.db(move |conn| service::reopen(conn, &actor, id)).await?;
    ctx.flash("success", "Đã đưa thư trở lại hộp thư.");
    Ok(redirect(&format!("/mail/{id}")))
}

async fn reclassify(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    let cfg = ctx.state.config.mail.clone();
    let kind = ctx.db(move |conn| service::reclassify(conn, &cfg, &actor, id)).await?;
    ctx.flash("success", format!("Đã phân loại lại: {}.", kind.label()));
    Ok(redirect(&format!("/mail/{id}")))
}

async fn rules(ctx: Ctx) -> AppResult<HttpResponse> {
    let rules = ctx.db(|conn| Ok(models::rules(conn)?)).await?;
    render(&RulesPage { l: ctx.layout("Quy tắc phân loại thư", &[("Quản trị", "/admin/users")]), rules })
}

#[derive(Deserialize)]
struct RuleForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    pattern: String,
}

async fn add_rule(ctx: Ctx, once: Once, form: web::Form<RuleForm>) -> AppResult<HttpResponse> {
    let f = form.into_inner();
    crate::web::layout::act_once(ctx, once, "/admin/mail-rules", "Đã thêm quy tắc.", move |conn, actor| {
        service::add_rule(conn, actor, &f.kind, &f.pattern).map(|_| ())
    })
    .await
}

async fn toggle_rule(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    ctx.db(move |conn| service::toggle_rule(conn, &actor, id)).await?;
    Ok(redirect("/admin/mail-rules"))
}

async fn delete_rule(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    ctx.db(move |conn| service::delete_rule(conn, &actor, id)).await?;
    ctx.flash("success", "Đã xóa quy tắc.");
    Ok(redirect("/admin/mail-rules"))
}

fn api_error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": code, "message": message, "data": null}))
}

/// Raw RFC 5322 in the body, `Authorization: Bearer <inbound_token>`. The body is read
/// only after the token is checked, so strangers cannot make us buffer megabytes.
async fn inbound(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    use actix_web::http::StatusCode;
    let expected = state.config.mail.inbound_token.clone();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = !expected.is_empty()
        && given.len() == expected.len()
        && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !ok {
        return api_error(StatusCode::UNAUTHORIZED, "unauthorized", "Thiếu hoặc sai mã truy cập (Bearer token).");
    }
    // Slightly larger mail is still kept raw (as too large to process), like other paths.
    let limit = state.config.mail.max_message_bytes + 1024 * 1024;
    let body = match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return api_error(StatusCode::BAD_REQUEST, "bad_body", &format!("Không đọc được nội dung thư: {e}"));
        }
        Err(_) => {
            let message = format!(
                "Thư lớn hơn giới hạn {} MB nên không được nhận.",
                state.config.mail.max_message_bytes / (1024 * 1024)
            );
            return api_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &message);
        }
    };
    if body.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "empty_body", "Nội dung thư trống.");
    }
    let cfg = state.config.mail.clone();
    match state.db(move |conn| service::ingest(conn, &cfg, &body, "http", None)).await {
        Ok(r) => HttpResponse::Accepted().json(serde_json::json!({"error": 0, "message": "accepted", "data": r})),
        Err(e) => {
            tracing::error!(error = ?e, "inbound mail failed");
            api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Không lưu được thư, vui lòng gửi lại.")
        }
    }
}
