//! The admin's audit page: filters by entity, user and date range, with paging.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::models::{self, AuditEntry, AuditFilter};
use crate::accounts::Role;
use crate::accounts::models::User;
use crate::error::AppResult;
use crate::fmt::{LocalTime, local_midnight_utc};
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, render};

const PAGE_SIZE: i64 = 50;

crate::routes! {
    GET "/admin/audit" => Access::Roles(&[Role::Admin]), list;
}

#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default)]
    pub entity: String,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page: Option<i64>,
}

impl AuditQuery {
    /// Days are local (Asia/Ho_Chi_Minh) and inclusive; unparsable fields are ignored.
    fn filter(&self) -> AuditFilter {
        let date = |s: &str| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        AuditFilter {
            entity_type: non_empty(&self.entity),
            entity_id: non_empty(&self.entity_id),
            user_id: self.user.trim().parse().ok(),
            from: date(&self.from).map(local_midnight_utc),
            until: date(&self.to).and_then(|d| d.succ_opt()).map(local_midnight_utc),
        }
    }

    fn link_to_page(&self, page: i64) -> String {
        let q = [
            ("entity", self.entity.as_str()),
            ("entity_id", self.entity_id.as_str()),
            ("user", self.user.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ];
        let mut s = format!("/admin/audit?page={page}");
        for (k, v) in q.iter().filter(|(_, v)| !v.is_empty()) {
            s.push_str(&format!("&{k}={}", urlencoding::encode(v)));
        }
        s
    }
}

#[derive(Template)]
#[template(path = "audit/list.html")]
struct AuditPage {
    l: Layout,
    q: AuditQuery,
    rows: Vec<AuditEntry>,
    total: i64,
    page: i64,
    pages: i64,
    entity_types: Vec<String>,
    users: Vec<User>,
}

impl AuditPage {
    fn when(&self, e: &AuditEntry) -> LocalTime {
        LocalTime(e.at)
    }

    fn prev_link(&self) -> Option<String> {
        (self.page > 1).then(|| self.q.link_to_page(self.page - 1))
    }

    fn next_link(&self) -> Option<String> {
        (self.page < self.pages).then(|| self.q.link_to_page(self.page + 1))
    }

    fn selected_user(&self, u: &User) -> bool {
        self.q.user == u.id.to_string()
    }
}

async fn list(ctx: Ctx, q: web::Query<AuditQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let page = crate::web::layout::page_number(q.page);
    let filter = q.filter();
    let (rows, total, entity_types, users) = ctx
        .db(move |conn| {
            let (rows, total) = models::page(conn, &filter, (page - 1) * PAGE_SIZE, PAGE_SIZE)?;
            Ok((rows, total, models::entity_types(conn)?, crate::accounts::models::list(conn)?))
        })
        .await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    render(&AuditPage {
        l: ctx.layout("Nhật ký thao tác", &[("Quản trị", "/admin/users")]),
        q,
        rows,
        total,
        page,
        pages,
        entity_types,
        users,
    })
}
