//! "Thư đã gửi": the outgoing mail with its status, and one message's view.

use actix_web::{HttpResponse, http::header, web};
use askama::Template;
use serde::Deserialize;

use super::outbound::{self, OutboxRow};
use crate::accounts::Role;
use crate::error::AppResult;
use crate::fmt::LocalTime;
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, render};

const DESK: Access = Access::Roles(&[Role::Sale, Role::Leader]);
const PAGE_SIZE: i64 = 50;

crate::routes! {
    GET "/mail/sent" => DESK, list;
    GET "/mail/sent/{id}" => DESK, show;
    GET "/mail/sent/{id}/raw" => DESK, raw;
}

#[derive(Template)]
#[template(path = "mail/sent.html")]
struct SentPage {
    l: Layout,
    rows: Vec<OutboxRow>,
    total: i64,
    page: i64,
    pages: i64,
}

impl SentPage {
    fn when(&self, r: &OutboxRow) -> LocalTime {
        LocalTime(r.sent_at.unwrap_or(r.created_at))
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<i64>,
}

async fn list(ctx: Ctx, q: web::Query<PageQuery>) -> AppResult<HttpResponse> {
    let page = crate::web::layout::page_number(q.page);
    let (rows, total) = ctx.db(move |conn| Ok(outbound::outbox_page(conn, (page - 1) * PAGE_SIZE, PAGE_SIZE)?)).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    render(&SentPage {
        l: ctx.layout("Thư đã gửi", &[("Hộp thư đối tác", "/mail")]), rows, total, page, pages
    })
}

#[derive(Template)]
#[template(path = "mail/sent_one.html")]
struct SentOnePage {
    l: Layout,
    m: OutboxRow,
}

impl SentOnePage {
    fn created(&self) -> LocalTime {
        LocalTime(self.m.created_at)
    }
}

async fn show(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let m = ctx.db(move |conn| Ok(outbound::outbox_row(conn, id)?)).await?;
    render(&SentOnePage { l: ctx.layout(&m.subject.clone(), &[("Thư đã gửi", "/mail/sent")]), m })
}

async fn raw(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let raw = ctx.db(move |conn| Ok(outbound::outbox_raw(conn, id)?)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "message/rfc822"))
        .insert_header(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(format!("thu-gui-{id}.eml"))],
        })
        .body(raw))
}
