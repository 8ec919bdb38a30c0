//! "Báo cáo tháng": the month's connected points, previewed and downloaded as Excel.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Month, Row, month_counts, month_page, write_workbook};
use crate::accounts::Role;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, render};

const ACCOUNTING: Access = Access::Roles(&[Role::Accountant]);
const PAGE_SIZE: usize = 100;
/// A partner's statement; the upload's own bound may be larger.
const MAX_STATEMENT_BYTES: usize = 30 * 1024 * 1024;

crate::routes! {
    GET "/reports" => ACCOUNTING, preview;
    GET "/reports/reconcile" => ACCOUNTING, reconcile_home;
    POST "/reports/reconcile" => ACCOUNTING, reconcile_upload, Upload;
    GET "/reports/reconcile/{id}" => ACCOUNTING, reconcile_show;
    POST "/reports/reconcile/{id}/run" => ACCOUNTING, reconcile_run;
    GET "/reports/reconcile/{id}/xlsx" => ACCOUNTING, reconcile_xlsx;
    GET "/reports/{month}/xlsx" => ACCOUNTING, download;
}

#[derive(Deserialize, Default)]
struct Query {
    month: Option<String>,
    page: Option<usize>,
}

#[derive(Template)]
#[template(path = "reports/preview.html")]
struct PreviewPage {
    l: Layout,
    month: Month,
    counts: Vec<(String, usize)>,
    total: usize,
    rows: Vec<Row>,
    page: usize,
    pages: usize,
}

impl PreviewPage {
    fn when(&self, r: &Row) -> String {
        r.live_at.format("%d/%m/%Y %H:%M").to_string()
    }
    fn month_value(&self) -> String {
        self.month.to_string()
    }
}

async fn preview(ctx: Ctx, q: web::Query<Query>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let default = Month::of(crate::fmt::local_date(crate::db::now())).previous();
    let month = match q.month.as_deref() {
        None | Some("") => default,
        Some(m) => Month::parse(m).ok_or_else(|| AppError::Validation("Tháng không hợp lệ (dạng 2026-10).".into()))?,
    };
    // Typed or crafted: a huge page would overflow the row offset below.
    let asked = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let (counts, rows, page) = ctx
        .db(move |conn| {
            let counts = month_counts(conn, month)?;
            let total: usize = counts.iter().map(|c| c.1).sum();
            // Past the last page shows the last one.
            let page = asked.min(total.div_ceil(PAGE_SIZE).max(1));
            let rows = month_page(conn, month, (page - 1) * PAGE_SIZE, PAGE_SIZE)?;
            Ok((counts, rows, page))
        })
        .await?;
    let total: usize = counts.iter().map(|c| c.1).sum();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    render(&PreviewPage {
        l: ctx.layout("Báo cáo điểm kết nối", &[]), month, counts, total, rows, page, pages
    })
}

/// The workbook is written to an unnamed temporary file and streamed from there: a
/// month of a million connections never sits in memory whole.
async fn download(ctx: Ctx, req: actix_web::HttpRequest, month: web::Path<String>) -> AppResult<HttpResponse> {
    let month = Month::parse(&month).ok_or(AppError::NotFound)?;
    let file = ctx
        .db(move |conn| {
            let mut file = tempfile::tempfile().map_err(AppError::internal)?;
            write_workbook(conn, month, &mut file)?;
            std::io::Seek::rewind(&mut file).map_err(AppError::internal)?;
            Ok(file)
        })
        .await?;
    let named = actix_files::NamedFile::from_file(file, month.file_name())
        .map_err(AppError::internal)?
        .set_content_disposition(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(month.file_name())],
        });
    let mut res = named.into_response(&req);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    );
    Ok(res)
}

use super::reconcile::{self, Mapping, Reconciliation};
use crate::hub::partners::Partner;

/// Rows of the statement shown under the mapping form.
const PREVIEW_ROWS: usize = 6;

#[derive(Template)]
#[template(path = "reports/reconcile_home.html")]
struct ReconcileHome {
    l: Layout,
    partners: Vec<Partner>,
    recent: Vec<Reconciliation>,
    default_month: String,
}

impl ReconcileHome {
    fn partner(&self, id: &i64) -> String {
        self.partners.iter().find(|p| p.id == *id).map(|p| p.code.clone()).unwrap_or_default()
    }
    fn when(&self, r: &Reconciliation) -> crate::fmt::LocalTime {
        crate::fmt::LocalTime(r.created_at)
    }
}

async fn reconcile_home(ctx: Ctx) -> AppResult<HttpResponse> {
    let (partners, recent) = ctx.db(|conn| Ok((crate::hub::partners::all(conn)?, reconcile::recent(conn)?))).await?;
    let default_month = Month::of(crate::fmt::local_date(crate::db::now())).previous().to_string();
    render(&ReconcileHome {
        l: ctx.layout("Đối soát với đối tác", &[("Báo cáo tháng", "/reports")]),
        partners,
        recent,
        default_month,
    })
}

async fn reconcile_upload(ctx: Ctx, mut form: crate::web::upload::Upload) -> AppResult<HttpResponse> {
    let partner_id: i64 = form.field("partner_id").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let month = form.field("month").unwrap_or("").to_string();
    let (file_name, bytes) =
        form.take_files("file").pop().map(|f| (f.name, f.bytes)).unwrap_or_else(|| ("doi-soat".into(), Vec::new()));
    if bytes.len() > MAX_STATEMENT_BYTES {
        return Err(AppError::Validation("Tệp lớn hơn 30 MB.".into()));
    }
    let actor = ctx.actor()?;
    match ctx.db(move |conn| reconcile::upload(conn, &actor, partner_id, &month, &file_name, &bytes)).await {
        Ok(id) => Ok(crate::web::layout::redirect(&format!("/reports/reconcile/{id}"))),
        Err(AppError::Validation(m)) => {
            ctx.flash("error", m);
            Ok(crate::web::layout::redirect("/reports/reconcile"))
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "reports/reconcile_show.html")]
struct ReconcileShow {
    l: Layout,
    r: Reconciliation,
    partner: String,
    sheets: Vec<(String, Vec<Vec<String>>)>,
    /// The cells of the mapping's header row.
    header: Vec<String>,
    mapping: Mapping,
    outcome: Option<reconcile::OutcomeHead>,
    error: Option<String>,
}

impl ReconcileShow {
    fn headers(&self) -> Vec<(usize, String)> {
        let row = self.header.iter().cloned();
        row.enumerate().map(|(i, h)| (i, if h.is_empty() { format!("Cột {}", i + 1) } else { h })).collect()
    }
    fn is(&self, col: &Option<usize>, i: &usize) -> bool {
        *col == Some(*i)
    }
}

async fn reconcile_show(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    reconcile_page(&ctx, id, None).await
}

async fn reconcile_page(ctx: &Ctx, id: i64, error: Option<String>) -> AppResult<HttpResponse> {
    let (r, partner, sheets, chosen, outcome) = ctx
        .db(move |conn| {
            let r = reconcile::get(conn, id)?;
            let outcome = reconcile::saved_head(conn, &r)?;
            let partner = crate::hub::partners::all(conn)?
                .into_iter()
                .find(|p| p.id == r.partner_id)
                .map(|p| p.code)
                .unwrap_or_default();
            let chosen: Option<Mapping> = match r.mapping.as_deref().and_then(|m| serde_json::from_str(m).ok()) {
                Some(m) => Some(m),
                None => reconcile::saved_mapping(conn, r.partner_id)?,
            };
            // The preview and the header row are all the page shows of the file.
            let header = chosen.as_ref().map_or(0, |m| m.header_row);
            let (name, bytes) = reconcile::file(conn, id)?;
            let sheets = crate::sheets::read_head(&bytes, &name, header.saturating_add(1).max(PREVIEW_ROWS))
                .map_err(AppError::Validation)?;
            Ok((r, partner, sheets, chosen, outcome))
        })
        .await?;
    let mapping = chosen.unwrap_or_else(|| Mapping {
        sheet: sheets.first().map(|s| s.name.clone()).unwrap_or_default(),
        ..Default::default()
    });
    let header = sheets
        .iter()
        .find(|s| s.name == mapping.sheet)
        .or(sheets.first())
        .and_then(|s| s.rows.get(mapping.header_row))
        .cloned()
        .unwrap_or_default();
    let sheets = sheets.into_iter().map(|s| (s.name, s.rows.into_iter().take(PREVIEW_ROWS).collect())).collect();
    let status = if error.is_some() {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        actix_web::http::StatusCode::OK
    };
    let page = ReconcileShow {
        l: ctx.layout(&format!("Đối soát #{id}"), &[("Đối soát", "/reports/reconcile")]),
        r,
        partner,
        sheets,
        header,
        mapping,
        outcome,
        error,
    };
    crate::web::layout::render_status(status, &page)
}

#[derive(Deserialize)]
struct MappingForm {
    #[serde(default)]
    sheet: String,
    #[serde(default)]
    header_row: usize,
    #[serde(default)]
    pos_id: String,
    #[serde(default)]
    point_code: String,
    #[serde(default)]
    merchant: String,
    #[serde(default)]
    date: String,
}

async fn reconcile_run(ctx: Ctx, id: web::Path<i64>, form: web::Form<MappingForm>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let f = form.into_inner();
    let col = |s: &str| s.trim().parse::<usize>().ok();
    let mapping = Mapping {
        sheet: f.sheet,
        header_row: f.header_row.saturating_sub(1),
        pos_id: col(&f.pos_id),
        point_code: col(&f.point_code),
        merchant: col(&f.merchant),
        date: col(&f.date),
    };
    let actor = ctx.actor()?;
    match ctx.db(move |conn| reconcile::run(conn, &actor, id, &mapping)).await {
        Ok(_) => Ok(crate::web::layout::redirect(&format!("/reports/reconcile/{id}"))),
        Err(AppError::Validation(m)) => reconcile_page(&ctx, id, Some(m)).await,
        Err(e) => Err(e),
    }
}

async fn reconcile_xlsx(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (r, book) = ctx.db(move |conn| Ok((reconcile::get(conn, id)?, reconcile::outcome_xlsx(conn, id)?))).await?;
    let book = book.ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .insert_header(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(format!("doi-soat-{}-{}.xlsx", r.month, r.id))],
        })
        .body(book))
}
