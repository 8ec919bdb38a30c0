//! "Báo cáo tháng": the month's connected points, previewed and downloaded as Excel.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Month, Row, counts, month_rows, workbook};
use crate::accounts::Role;
use crate::error::{AppError, AppResult};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, render};

const ACCOUNTING: Access = Access::Roles(&[Role::Accountant]);
const PAGE_SIZE: usize = 100;

crate::routes! {
    GET "/reports" => ACCOUNTING, preview;
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
    let rows = ctx.db(move |conn| month_rows(conn, month)).await?;
    let page = q.page.unwrap_or(1).max(1);
    let pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    let counts = counts(&rows);
    let total = rows.len();
    let rows = rows.into_iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
    render(&PreviewPage {
        l: ctx.layout("Báo cáo điểm kết nối", &[]), month, counts, total, rows, page, pages
    })
}

async fn download(ctx: Ctx, month: web::Path<String>) -> AppResult<HttpResponse> {
    let month = Month::parse(&month).ok_or(AppError::NotFound)?;
    let book = ctx.db(move |conn| workbook(month, &month_rows(conn, month)?)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .insert_header(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(month.file_name())],
        })
        .body(book))
}
