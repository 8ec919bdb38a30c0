//! Outgoing mail: composed once (Message-ID fixed, raw bytes kept in `mail_outbox`),
//! sent by a job through SMTP or the file transport.
//!
//! Rules: [`queue_mail`] runs in the caller's transaction; the send job is keyed on the
//! outbox row and skips a row already sent, so a retried or replayed job never sends
//! twice; replies carry In-Reply-To and References so they land in the partner's thread.

use askama::Template;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use rand::RngCore;

use crate::audit::{self, Actor};
use crate::config::OutboundConfig;
use crate::db::schema::mail_outbox;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::worker::{JobOptions, enqueue};

pub const SEND_JOB: &str = "mail.send";

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMail {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The Message-ID this answers (without angle brackets).
    pub in_reply_to: Option<String>,
    /// The thread's Message-IDs, oldest first (without angle brackets).
    pub references: Vec<String>,
    pub attachments: Vec<(String, String, Vec<u8>)>,
    pub request_id: Option<i64>,
}

impl OutgoingMail {
    /// A new message (not a reply) with a subject and a text body.
    pub fn simple(to: Vec<String>, subject: impl Into<String>, text: String) -> Self {
        OutgoingMail { to, subject: subject.into(), text, ..Default::default() }
    }
}

/// "a@x.vn, b@y.vn; c@z.vn" as typed in a form → the addresses.
pub fn split_addresses(s: &str) -> Vec<String> {
    s.split([',', ';']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect()
}

/// The HTML part, rendered from the text so both parts always say the same.
#[derive(Template)]
#[template(path = "mail/out/message.html")]
struct HtmlBody<'a> {
    paragraphs: Vec<Vec<&'a str>>,
}

fn html_of(text: &str) -> AppResult<String> {
    let paragraphs = text.split("\n\n").map(|p| p.lines().collect()).collect();
    Ok(HtmlBody { paragraphs }.render()?)
}

fn mailbox(addr: &str) -> AppResult<Mailbox> {
    addr.trim().parse::<Mailbox>().map_err(|_| AppError::Validation(format!("Địa chỉ mail không hợp lệ: {addr}")))
}

fn new_message_id(domain: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{}.{}@{domain}", hex::encode(bytes), chrono::Utc::now().timestamp())
}

/// Composes the message and queues it, inside the caller's transaction.
pub fn queue_mail(conn: &mut DbConn, cfg: &OutboundConfig, actor: &Actor, mail: &OutgoingMail) -> AppResult<i64> {
    if mail.to.is_empty() {
        return Err(AppError::Validation("Thư cần ít nhất một người nhận.".into()));
    }
    if mail.subject.trim().is_empty() || mail.text.trim().is_empty() {
        return Err(AppError::Validation("Thư cần tiêu đề và nội dung.".into()));
    }
    let from = Mailbox::new(
        Some(cfg.from_name.clone()),
        cfg.from.parse().map_err(|_| AppError::Validation("Địa chỉ gửi không hợp lệ.".into()))?,
    );
    let message_id = new_message_id(&cfg.message_id_domain);
    let mut builder =
        Message::builder().from(from).subject(mail.subject.trim()).message_id(Some(format!("<{message_id}>")));
    for to in &mail.to {
        builder = builder.to(mailbox(to)?);
    }
    for cc in &mail.cc {
        builder = builder.cc(mailbox(cc)?);
    }
    if let Some(parent) = &mail.in_reply_to {
        builder = builder.in_reply_to(format!("<{parent}>"));
    }
    if !mail.references.is_empty() {
        builder = builder.references(mail.references.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(" "));
    }
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(mail.text.clone()))
        .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html_of(&mail.text)?));
    let body = if mail.attachments.is_empty() {
        alternative
    } else {
        let mut mixed = MultiPart::mixed().multipart(alternative);
        for (name, content_type, bytes) in &mail.attachments {
            let ct = ContentType::parse(content_type)
                .unwrap_or(ContentType::parse("application/octet-stream").map_err(AppError::internal)?);
            mixed = mixed.singlepart(Attachment::new(name.clone()).body(bytes.clone(), ct));
        }
        mixed
    };
    let message = builder.multipart(body).map_err(|e| AppError::Validation(format!("Không tạo được thư: {e}")))?;
    let raw = message.formatted();
    let names = mail.attachments.iter().map(|a| a.0.clone()).collect::<Vec<_>>().join(", ");
    crate::db::tx(conn, |conn| {
        let id: i64 = diesel::insert_into(mail_outbox::table)
            .values((
                mail_outbox::status.eq("queued"),
                mail_outbox::from_addr.eq(&cfg.from),
                mail_outbox::to_addrs.eq(mail.to.join(", ")),
                mail_outbox::cc_addrs.eq(mail.cc.join(", ")),
                mail_outbox::subject.eq(mail.subject.trim()),
                mail_outbox::message_id.eq(&message_id),
                mail_outbox::in_reply_to.eq(&mail.in_reply_to),
                mail_outbox::refs.eq(mail.references.join(" ")),
                mail_outbox::text_body.eq(&mail.text),
                mail_outbox::raw.eq(&raw),
                mail_outbox::attachment_names.eq(&names),
                mail_outbox::request_id.eq(mail.request_id),
                mail_outbox::created_by.eq(actor.user_id),
                mail_outbox::created_at.eq(now()),
            ))
            .returning(mail_outbox::id)
            .get_result(conn)?;
        enqueue(
            conn,
            SEND_JOB,
            &serde_json::json!({"outbox_id": id}),
            &JobOptions { unique_key: Some(format!("mail:{id}")), ..Default::default() },
        )?;
        audit::record(
            conn,
            actor,
            "mail_outbox",
            id,
            "queue",
            None,
            Some(serde_json::json!({"to": mail.to, "subject": mail.subject, "message_id": message_id})),
        )?;
        Ok(id)
    })
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub status: String,
    pub from_addr: String,
    pub to_addrs: String,
    pub cc_addrs: String,
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub refs: String,
    pub text_body: String,
    pub attachment_names: String,
    pub request_id: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub sent_at: Option<NaiveDateTime>,
}

pub fn outbox_row(conn: &mut DbConn, id: i64) -> QueryResult<OutboxRow> {
    mail_outbox::table.find(id).select(OutboxRow::as_select()).first(conn)
}

pub fn outbox_raw(conn: &mut DbConn, id: i64) -> QueryResult<Vec<u8>> {
    mail_outbox::table.find(id).select(mail_outbox::raw).first(conn)
}

pub fn outbox_page(conn: &mut DbConn, offset: i64, limit: i64) -> QueryResult<(Vec<OutboxRow>, i64)> {
    let total = mail_outbox::table.count().get_result(conn)?;
    let rows = mail_outbox::table
        .order(mail_outbox::id.desc())
        .offset(offset)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Whether a mail with exactly this subject was already queued (idempotent senders).
pub fn outbox_has_subject(conn: &mut DbConn, subject: &str) -> QueryResult<bool> {
    let n: i64 = mail_outbox::table.filter(mail_outbox::subject.eq(subject)).count().get_result(conn)?;
    Ok(n > 0)
}

/// Outgoing mail of a request, for its timeline.
pub fn outbox_of_request(conn: &mut DbConn, request_id: i64) -> QueryResult<Vec<OutboxRow>> {
    crate::with_conn!(conn, |c| mail_outbox::table
        .filter(mail_outbox::request_id.eq(request_id))
        .order(mail_outbox::id.asc())
        .select(OutboxRow::as_select())
        .load(c))
}

/// The thread of one of our own Message-IDs (replies to our mail thread with it).
pub fn request_of_message_ids(conn: &mut DbConn, ids: &[String]) -> QueryResult<Option<i64>> {
    if ids.is_empty() {
        return Ok(None);
    }
    // The oldest sent mail decides, as in [`requests_of_message_ids`].
    mail_outbox::table
        .filter(mail_outbox::message_id.eq_any(ids))
        .filter(mail_outbox::request_id.is_not_null())
        .order(mail_outbox::id.asc())
        .select(mail_outbox::request_id)
        .first::<Option<i64>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Our sent mails among `ids` that belong to a request, oldest first: (Message-ID,
/// request), for a whole batch of arriving mail at once.
pub fn requests_of_message_ids(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<(String, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, Option<i64>)> = mail_outbox::table
        .filter(mail_outbox::message_id.eq_any(ids))
        .filter(mail_outbox::request_id.is_not_null())
        .order(mail_outbox::id.asc())
        .select((mail_outbox::message_id, mail_outbox::request_id))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(m, r)| Some((m, r?))).collect())
}

fn envelope(row: &OutboxRow) -> Result<lettre::address::Envelope, String> {
    let parse = |s: &str| s.trim().parse::<lettre::Address>().map_err(|e| format!("{s}: {e}"));
    let recipients = row
        .to_addrs
        .split(',')
        .chain(row.cc_addrs.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let m: Mailbox = s.trim().parse().map_err(|e| format!("{s}: {e}"))?;
            Ok(m.email)
        })
        .collect::<Result<Vec<_>, String>>()?;
    lettre::address::Envelope::new(Some(parse(&row.from_addr)?), recipients).map_err(|e| e.to_string())
}

/// The `mail.send` job: sends the stored raw message once.
pub async fn send_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let id = ctx.payload["outbox_id"].as_i64().ok_or("payload without outbox_id")?;
    let (row, raw) = ctx.db(move |c| Ok((outbox_row(c, id)?, outbox_raw(c, id)?))).await?;
    if row.status == "sent" {
        return Ok(());
    }
    let result = match envelope(&row) {
        Ok(env) => ctx.services.mailer.send_raw(&env, &raw).await,
        Err(e) => Err(e),
    };
    let last = ctx.is_last_attempt();
    let outcome = result.clone();
    ctx.db(move |c| {
        let status = match (&outcome, last) {
            (Ok(()), _) => "sent",
            (Err(_), true) => "failed",
            (Err(_), false) => "queued",
        };
        diesel::update(mail_outbox::table.find(id))
            .set((
                mail_outbox::status.eq(status),
                mail_outbox::attempts.eq(mail_outbox::attempts + 1),
                mail_outbox::error.eq(outcome.as_ref().err()),
                mail_outbox::sent_at.eq(outcome.is_ok().then(now)),
            ))
            .execute(c)?;
        Ok(())
    })
    .await?;
    result
}

pub fn status_label(status: &str) -> &'static str {
    match status {
        "queued" => "Đang chờ gửi",
        "sent" => "Đã gửi",
        "failed" => "Gửi thất bại",
        _ => "Không rõ",
    }
}
