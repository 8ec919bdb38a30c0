//! Create forms that act once, however often they are sent.
//!
//! Every rendered create form carries a fresh random `_once` value
//! ([`super::layout::Layout::once`]). The first submission records (user, token) with
//! its answer — where it redirected and what it said — in the same transaction as the
//! row it creates; a second submission of that render (a double-click, a resend after
//! a dropped connection) finds the record and gets the same answer without creating
//! anything. The primary key on (user, token) settles concurrent submissions: on
//! PostgreSQL the second insert waits for the first transaction and then finds the
//! key taken; on SQLite writers take turns (`BEGIN IMMEDIATE`). A failed create rolls
//! its record back, so the corrected form can be sent again.
//!
//! The CSRF middleware, which already parses the form body, hands the field over as
//! [`SubmittedOnce`]; handlers take the [`Once`] extractor.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::layout::{Ctx, redirect};
use crate::audit::Actor;
use crate::db::DbConn;
use crate::db::schema::form_submissions;
use crate::error::{AppError, AppResult};

/// How long a submission is remembered; a form left open longer creates again.
pub const KEEP_HOURS: i64 = 24;
pub const PRUNE_JOB: &str = "web.prune_form_submissions";

/// The `_once` field of the submitted form, as the CSRF middleware read it.
#[derive(Clone, Debug)]
pub struct SubmittedOnce(pub String);

/// Extractor: the form's idempotency token, if it sent one.
#[derive(Clone, Debug, Default)]
pub struct Once(Option<String>);

impl Once {
    /// No token: the action runs each time (forms that are not create forms).
    pub fn none() -> Self {
        Once(None)
    }

    /// The token a multipart form sent as a field (the middleware reads no multipart).
    pub fn from_field(sent: Option<&str>) -> AppResult<Self> {
        match sent {
            None => Ok(Once(None)),
            Some(t) if valid(t) => Ok(Once(Some(t.to_string()))),
            Some(_) => Err(AppError::Validation("Biểu mẫu không hợp lệ. Vui lòng tải lại trang và gửi lại.".into())),
        }
    }
}

/// What a create answered: where it went and what it told the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub location: String,
    pub message: String,
}

impl Done {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Done { location: location.into(), message: message.into() }
    }
}

/// A value we issued: URL-safe base64 of 32 random bytes. Anything else was made up.
fn valid(token: &str) -> bool {
    (16..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FromRequest for Once {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let sent = req.extensions().get::<SubmittedOnce>().map(|s| s.0.clone());
        std::future::ready(match sent {
            None => Ok(Once(None)),
            Some(t) if valid(&t) => Ok(Once(Some(t))),
            Some(_) => Err(AppError::Validation("Biểu mẫu không hợp lệ. Vui lòng tải lại trang và gửi lại.".into())),
        })
    }
}

/// Runs `create` once per (user, token): the first time in a transaction that also
/// records its answer, later times returning that answer. Without a token it just runs.
pub fn record<F>(conn: &mut DbConn, user_id: i64, once: &Once, create: F) -> AppResult<Done>
where
    F: FnOnce(&mut DbConn) -> AppResult<Done>,
{
    let Some(token) = once.0.as_deref() else {
        return create(conn);
    };
    crate::db::tx(conn, |conn| {
        let claimed = crate::with_conn!(conn, |c| diesel::insert_into(form_submissions::table)
            .values((
                form_submissions::user_id.eq(user_id),
                form_submissions::token.eq(token),
                form_submissions::location.eq(""),
                form_submissions::message.eq(""),
                form_submissions::created_at.eq(crate::db::now()),
            ))
            .on_conflict_do_nothing()
            .execute(c))?;
        if claimed == 0 {
            let (location, message) = form_submissions::table
                .find((user_id, token))
                .select((form_submissions::location, form_submissions::message))
                .first::<(String, String)>(conn)?;
            return Ok(Done { location, message });
        }
        let done = create(conn)?;
        diesel::update(form_submissions::table.find((user_id, token)))
            .set((form_submissions::location.eq(&done.location), form_submissions::message.eq(&done.message)))
            .execute(conn)?;
        Ok(done)
    })
}

/// A create form's handler: runs `create` at most once for this render of the form,
/// flashes its message and redirects where it said. Errors are the caller's to show
/// (a form re-rendered with its message, or a flash).
pub async fn submit<F>(ctx: &Ctx, once: Once, create: F) -> AppResult<HttpResponse>
where
    F: FnOnce(&mut DbConn, &Actor) -> AppResult<Done> + Send + 'static,
{
    let actor = ctx.actor()?;
    let user_id = ctx.user()?.id;
    let done = ctx.db(move |conn| record(conn, user_id, &once, |c| create(c, &actor))).await?;
    ctx.flash("success", done.message);
    Ok(redirect(&done.location))
}

/// A create form whose first answer is a page of its own, showing a secret that is
/// never stored (an API key, a client secret): runs `create` at most once for this
/// render. The first time it returns what `create` made; a repeat of that render gets
/// the `Done` that `create` returned with it — a flash saying the form was already sent,
/// and a redirect — since the secret cannot be shown again.
pub async fn submit_first<T, F>(ctx: &Ctx, once: Once, create: F) -> AppResult<Result<T, HttpResponse>>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &Actor) -> AppResult<(T, Done)> + Send + 'static,
{
    let actor = ctx.actor()?;
    let user_id = ctx.user()?.id;
    let (repeat, made) = ctx
        .db(move |conn| {
            let mut made = None;
            let repeat = record(conn, user_id, &once, |c| {
                let (value, repeat) = create(c, &actor)?;
                made = Some(value);
                Ok(repeat)
            })?;
            Ok((repeat, made))
        })
        .await?;
    match made {
        Some(value) => Ok(Ok(value)),
        None => {
            ctx.flash("info", repeat.message);
            Ok(Err(redirect(&repeat.location)))
        }
    }
}

/// Forgets submissions older than `before`; returns how many.
pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(form_submissions::table.filter(form_submissions::created_at.lt(before))).execute(conn)
}

pub async fn prune_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let before = crate::db::now() - chrono::Duration::hours(KEEP_HOURS);
    let removed = ctx.db(move |conn| Ok(prune(conn, before)?)).await?;
    if removed > 0 {
        tracing::info!(removed, "pruned old form submissions");
    }
    Ok(())
}
