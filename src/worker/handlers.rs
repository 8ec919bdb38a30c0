//! The admin's queue page ("Hàng đợi"): counts per kind and state, dead jobs with
//! their last error, retry and discard (audited), and each job's history.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;

use super::models::{self, Job};
use crate::accounts::Role;
use crate::error::{AppError, AppResult};
use crate::fmt::LocalTime;
use crate::web::access::Access;
use crate::web::layout::{Ctx, Layout, redirect, render};

const ADMIN: Access = Access::Roles(&[Role::Admin]);

crate::routes! {
    GET "/admin/jobs" => ADMIN, overview;
    GET "/admin/jobs/{id}" => ADMIN, detail;
    POST "/admin/jobs/{id}/retry" => ADMIN, retry;
    POST "/admin/jobs/{id}/discard" => ADMIN, discard;
}

pub struct KindRow {
    pub kind: String,
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
}

#[derive(Template)]
#[template(path = "worker/overview.html")]
struct OverviewPage {
    l: Layout,
    kinds: Vec<KindRow>,
    dead: Vec<Job>,
    live: Vec<Job>,
    now: NaiveDateTime,
}

impl OverviewPage {
    fn when(&self, t: &NaiveDateTime) -> LocalTime {
        LocalTime(*t)
    }

    fn running(&self, j: &Job) -> bool {
        j.state(self.now) == "running"
    }
}

async fn overview(ctx: Ctx) -> AppResult<HttpResponse> {
    let (counts, live, dead) =
        ctx.db(|conn| Ok((models::counts(conn)?, models::live(conn)?, models::dead(conn)?))).await?;
    let now = crate::db::now();
    let kinds = counts
        .into_iter()
        .map(|(kind, done, dead, total)| {
            let running = live.iter().filter(|j| j.kind == kind && j.state(now) == "running").count() as i64;
            KindRow { queued: total - done - dead - running, running, done, dead, kind }
        })
        .collect();
    render(&OverviewPage { l: ctx.layout("Hàng đợi", &[("Quản trị", "/admin/users")]), kinds, dead, live, now })
}

#[derive(Template)]
#[template(path = "worker/detail.html")]
struct DetailPage {
    l: Layout,
    job: Job,
    state: &'static str,
    events: Vec<models::JobEvent>,
}

impl DetailPage {
    fn when(&self, t: &NaiveDateTime) -> LocalTime {
        LocalTime(*t)
    }
}

async fn detail(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (job, events) = ctx
        .db(move |conn| {
            let job = models::job(conn, id)?;
            let events = models::events_of(conn, &job)?;
            Ok((job, events))
        })
        .await?;
    let state = job.state(crate::db::now());
    render(&DetailPage {
        l: ctx.layout(&format!("Việc #{id}"), &[("Hàng đợi", "/admin/jobs")]), job, state, events
    })
}

async fn retry(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    match ctx.db(move |conn| super::retry_dead(conn, &actor, id)).await {
        Ok(()) => ctx.flash("success", format!("Đã đưa việc #{id} trở lại hàng đợi.")),
        Err(AppError::Validation(m)) => ctx.flash("error", m),
        Err(e) => return Err(e),
    }
    Ok(redirect(&format!("/admin/jobs/{id}")))
}

async fn discard(ctx: Ctx, id: web::Path<i64>) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let actor = ctx.actor()?;
    match ctx.db(move |conn| super::discard_dead(conn, &actor, id)).await {
        Ok(()) => ctx.flash("success", format!("Đã bỏ qua việc #{id}.")),
        Err(AppError::Validation(m)) => ctx.flash("error", m),
        Err(e) => return Err(e),
    }
    Ok(redirect(&format!("/admin/jobs/{id}")))
}
