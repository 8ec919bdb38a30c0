//! Diesel structs and every query of inbound mail.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{mail_attachments, mail_blobs, mail_messages, mail_rules, mail_threads};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_blobs)]
pub struct BlobInfo {
    pub id: i64,
    pub sha256: String,
    pub size: i64,
    pub source: String,
    pub file_name: Option<String>,
    pub status: String,
    pub error: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub received_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub processed_at: Option<NaiveDateTime>,
}

pub fn blob_by_sha(conn: &mut DbConn, sha: &str) -> QueryResult<Option<BlobInfo>> {
    mail_blobs::table.filter(mail_blobs::sha256.eq(sha)).select(BlobInfo::as_select()).first(conn).optional()
}

pub fn blob(conn: &mut DbConn, id: i64) -> QueryResult<BlobInfo> {
    mail_blobs::table.find(id).select(BlobInfo::as_select()).first(conn)
}

pub fn blob_raw(conn: &mut DbConn, id: i64) -> QueryResult<Vec<u8>> {
    mail_blobs::table.find(id).select(mail_blobs::raw).first(conn)
}

/// Keeps a message's raw bytes; `None` when the same bytes were stored meanwhile (the
/// same mail delivered twice at once by two MX hosts, or an MTA retrying): that one is
/// a duplicate, not a failure.
pub fn insert_blob(
    conn: &mut DbConn,
    sha: &str,
    raw: &[u8],
    source: &str,
    file_name: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    let row = (
        mail_blobs::sha256.eq(sha),
        mail_blobs::raw.eq(raw),
        mail_blobs::size.eq(raw.len() as i64),
        mail_blobs::source.eq(source),
        mail_blobs::file_name.eq(file_name),
        mail_blobs::status.eq("received"),
        mail_blobs::received_at.eq(at),
    );
    crate::with_conn!(conn, |c| diesel::insert_into(mail_blobs::table)
        .values(row)
        .on_conflict(mail_blobs::sha256)
        .do_nothing()
        .returning(mail_blobs::id)
        .get_result(c)
        .optional())
}

/// A batch's raw messages in one statement, ids in arrival order. Returns (id, sha256)
/// of the rows written: bytes stored before (or by a concurrent batch) are left out.
/// Two concurrent batches sharing messages in crossed order can deadlock on PostgreSQL;
/// it aborts one, whose bytes were not committed, and its source still holds them.
pub fn insert_blobs(
    conn: &mut DbConn,
    blobs: &[(&str, &[u8], Option<&str>)],
    source: &str,
    at: NaiveDateTime,
) -> QueryResult<Vec<(i64, String)>> {
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<_> = blobs
        .iter()
        .map(|(sha, raw, file_name)| {
            (
                mail_blobs::sha256.eq(*sha),
                mail_blobs::raw.eq(*raw),
                mail_blobs::size.eq(raw.len() as i64),
                mail_blobs::source.eq(source),
                mail_blobs::file_name.eq(*file_name),
                mail_blobs::status.eq("received"),
                mail_blobs::received_at.eq(at),
            )
        })
        .collect();
    crate::with_conn!(conn, |c| diesel::insert_into(mail_blobs::table)
        .values(&rows)
        .on_conflict(mail_blobs::sha256)
        .do_nothing()
        .returning((mail_blobs::id, mail_blobs::sha256))
        .get_results(c))
}

/// Marks the blobs of a batch's stored messages, in one statement.
pub fn set_blobs_stored(conn: &mut DbConn, ids: &[i64]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(mail_blobs::table.filter(mail_blobs::id.eq_any(ids)))
        .set((
            mail_blobs::status.eq("stored"),
            mail_blobs::error.eq(None::<String>),
            mail_blobs::processed_at.eq(Some(crate::db::now())),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_blob_status(conn: &mut DbConn, id: i64, status: &str, error: Option<&str>) -> QueryResult<()> {
    diesel::update(mail_blobs::table.find(id))
        .set((
            mail_blobs::status.eq(status),
            mail_blobs::error.eq(error),
            mail_blobs::processed_at.eq(Some(crate::db::now())),
        ))
        .execute(conn)?;
    Ok(())
}

/// Blobs that were kept but not turned into a message (unreadable, too large, stuck).
/// How many stored mails wait for a person (what [`problem_blobs`] lists, counted
/// without reading them).
pub fn problem_blob_count(conn: &mut DbConn) -> QueryResult<i64> {
    crate::with_conn!(conn, |c| mail_blobs::table
        .filter(mail_blobs::status.eq_any(PROBLEM_STATES))
        .count()
        .get_result(c))
}

const PROBLEM_STATES: [&str; 3] = ["unreadable", "too_large", "received"];

pub fn problem_blobs(conn: &mut DbConn) -> QueryResult<Vec<BlobInfo>> {
    mail_blobs::table
        .filter(mail_blobs::status.eq_any(PROBLEM_STATES))
        .order(mail_blobs::received_at.desc())
        .limit(200)
        .select(BlobInfo::as_select())
        .load(conn)
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_threads)]
pub struct Thread {
    pub id: i64,
    pub partner_id: Option<i64>,
    pub subject: String,
    pub norm_subject: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub first_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub last_at: NaiveDateTime,
    pub request_id: Option<i64>,
}

pub fn thread(conn: &mut DbConn, id: i64) -> QueryResult<Thread> {
    mail_threads::table.find(id).select(Thread::as_select()).first(conn)
}

/// Stored messages whose Message-ID is among `ids`, newest first, each with its
/// thread: the duplicate check and the Message-ID threading of an arriving message in
/// one round trip.
pub fn threads_by_message_ids(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<(i64, Option<String>, Thread)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    mail_messages::table
        .inner_join(mail_threads::table)
        .filter(mail_messages::message_id.eq_any(ids))
        .order(mail_messages::id.desc())
        .select((mail_messages::id, mail_messages::message_id, Thread::as_select()))
        .load(conn)
}

/// A recent thread with the same normalised subject and a compatible partner.
pub fn thread_by_subject(
    conn: &mut DbConn,
    norm: &str,
    partner_id: Option<i64>,
    since: NaiveDateTime,
) -> QueryResult<Option<Thread>> {
    let candidates: Vec<Thread> = mail_threads::table
        .filter(mail_threads::norm_subject.eq(norm))
        .filter(mail_threads::last_at.ge(since))
        .order(mail_threads::last_at.desc())
        .limit(SUBJECT_CANDIDATES as i64)
        .select(Thread::as_select())
        .load(conn)?;
    Ok(pick_by_subject(candidates, partner_id))
}

/// How many of a subject's most recently active threads a message may join.
pub const SUBJECT_CANDIDATES: usize = 20;

/// Among a subject's threads, most recently active first, the one a message of
/// `partner_id` joins: the first whose partner is unknown, its own, or when its own is.
pub fn pick_by_subject<T: std::borrow::Borrow<Thread>>(
    candidates: impl IntoIterator<Item = T>,
    partner_id: Option<i64>,
) -> Option<T> {
    candidates.into_iter().take(SUBJECT_CANDIDATES).find(|t| {
        let t = t.borrow();
        t.partner_id.is_none() || partner_id.is_none() || t.partner_id == partner_id
    })
}

/// A thread's last activity and partner once a message sent at `at` (of `partner_id`)
/// joins it; None when neither moves (an older reply to a thread whose partner is known).
pub fn activity_after(t: &Thread, partner_id: Option<i64>, at: NaiveDateTime) -> Option<(NaiveDateTime, Option<i64>)> {
    let after = (at.max(t.last_at), t.partner_id.or(partner_id));
    (after != (t.last_at, t.partner_id)).then_some(after)
}

/// Recent threads under any of `norms` (the subject matches of a whole batch at once),
/// newest first; [`thread_by_subject`] picks among them per message.
pub fn threads_by_subjects(conn: &mut DbConn, norms: &[&str], since: NaiveDateTime) -> QueryResult<Vec<Thread>> {
    if norms.is_empty() {
        return Ok(Vec::new());
    }
    mail_threads::table
        .filter(mail_threads::norm_subject.eq_any(norms))
        .filter(mail_threads::last_at.ge(since))
        .order((mail_threads::last_at.desc(), mail_threads::id.desc()))
        .select(Thread::as_select())
        .load(conn)
}

#[derive(Insertable)]
#[diesel(table_name = mail_threads, treat_none_as_default_value = false)]
pub struct NewThread<'a> {
    pub partner_id: Option<i64>,
    pub subject: &'a str,
    pub norm_subject: &'a str,
    pub first_at: NaiveDateTime,
    pub last_at: NaiveDateTime,
}

/// Inserts `rows` in one statement; their ids in the order of `rows`. Ids come from one
/// sequence (PostgreSQL) or one rowid counter (SQLite), drawn row by row as the
/// statement inserts, so in the order given whatever the order they are returned in.
pub fn insert_threads(conn: &mut DbConn, rows: &[NewThread<'_>]) -> QueryResult<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<i64> = crate::with_conn!(conn, |c| diesel::insert_into(mail_threads::table)
        .values(rows)
        .returning(mail_threads::id)
        .get_results(c))?;
    ids.sort_unstable();
    Ok(ids)
}

/// Writes a thread's last activity and partner as a batch left them.
pub fn set_thread_activity(
    conn: &mut DbConn,
    id: i64,
    last_at: NaiveDateTime,
    partner_id: Option<i64>,
) -> QueryResult<()> {
    diesel::update(mail_threads::table.find(id))
        .set((mail_threads::last_at.eq(last_at), mail_threads::partner_id.eq(partner_id)))
        .execute(conn)?;
    Ok(())
}

pub fn insert_thread(
    conn: &mut DbConn,
    partner_id: Option<i64>,
    subject: &str,
    norm: &str,
    at: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(mail_threads::table)
        .values((
            mail_threads::partner_id.eq(partner_id),
            mail_threads::subject.eq(subject),
            mail_threads::norm_subject.eq(norm),
            mail_threads::first_at.eq(at),
            mail_threads::last_at.eq(at),
        ))
        .returning(mail_threads::id)
        .get_result(conn)
}

/// Moves the thread's last activity forward and fills in its partner once known.
pub fn touch_thread(conn: &mut DbConn, t: &Thread, partner_id: Option<i64>, at: NaiveDateTime) -> QueryResult<()> {
    // Nothing moves: no round trip.
    let Some((last_at, partner_id)) = activity_after(t, partner_id, at) else {
        return Ok(());
    };
    set_thread_activity(conn, t.id, last_at, partner_id)
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_messages)]
pub struct MailMessage {
    pub id: i64,
    pub blob_id: i64,
    pub message_id: Option<String>,
    pub in_reply_to: String,
    pub refs: String,
    pub from_addr: String,
    pub from_name: String,
    pub to_addrs: String,
    pub cc_addrs: String,
    pub reply_to: String,
    pub subject: String,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub sent_at: Option<NaiveDateTime>,
    pub text_body: String,
    pub html_body: Option<String>,
    pub forwarded_from: Option<String>,
    pub forwarded_name: Option<String>,
    pub partner_id: Option<i64>,
    pub kind: String,
    pub kind_reason: String,
    pub thread_id: i64,
    pub status: String,
    pub status_reason: Option<String>,
    pub suggestions: String,
    pub notes: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
}

// None is NULL (every such column's default), so SQLite can take many rows at once.
#[derive(Insertable)]
#[diesel(table_name = mail_messages, treat_none_as_default_value = false)]
pub struct NewMessage<'a> {
    pub blob_id: i64,
    pub message_id: Option<&'a str>,
    pub in_reply_to: &'a str,
    pub refs: &'a str,
    pub from_addr: &'a str,
    pub from_name: &'a str,
    pub to_addrs: &'a str,
    pub cc_addrs: &'a str,
    pub reply_to: &'a str,
    pub subject: &'a str,
    pub sent_at: Option<NaiveDateTime>,
    pub text_body: &'a str,
    pub html_body: Option<&'a str>,
    pub forwarded_from: Option<&'a str>,
    pub forwarded_name: Option<&'a str>,
    pub partner_id: Option<i64>,
    pub kind: &'a str,
    pub kind_reason: &'a str,
    pub thread_id: i64,
    pub status: &'a str,
    pub suggestions: &'a str,
    pub created_at: NaiveDateTime,
    /// See [`search_text`].
    pub search_text: Option<&'a str>,
}

/// What the inbox search looks in, folded like the query (no case, no diacritics):
/// subject, sender and the text body, the body cut at 64 KB of text.
pub fn search_text(subject: &str, from_name: &str, from_addr: &str, body: &str) -> String {
    let mut end = body.len().min(64 * 1024);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    super::classify::fold(&format!("{subject} {from_name} {from_addr} {}", &body[..end]))
}

/// Folds the search text of mail stored before the column existed, in batches;
/// returns how many rows were filled. Idempotent: only NULL rows are touched.
pub fn backfill_search_text(conn: &mut DbConn) -> QueryResult<usize> {
    let mut done = 0;
    loop {
        let batch: Vec<(i64, String, String, String, String)> = mail_messages::table
            .filter(mail_messages::search_text.is_null())
            .order(mail_messages::id.asc())
            .limit(500)
            .select((
                mail_messages::id,
                mail_messages::subject,
                mail_messages::from_name,
                mail_messages::from_addr,
                mail_messages::text_body,
            ))
            .load(conn)?;
        if batch.is_empty() {
            return Ok(done);
        }
        for (id, subject, name, addr, body) in batch {
            diesel::update(mail_messages::table.find(id))
                .set(mail_messages::search_text.eq(search_text(&subject, &name, &addr, &body)))
                .execute(conn)?;
            done += 1;
        }
    }
}

pub fn insert_message(conn: &mut DbConn, m: &NewMessage<'_>) -> QueryResult<i64> {
    diesel::insert_into(mail_messages::table).values(m).returning(mail_messages::id).get_result(conn)
}

/// Inserts a batch's messages in one statement; each new id with its blob's id.
pub fn insert_messages(conn: &mut DbConn, rows: &[NewMessage<'_>]) -> QueryResult<Vec<(i64, i64)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    crate::with_conn!(conn, |c| diesel::insert_into(mail_messages::table)
        .values(rows)
        .returning((mail_messages::id, mail_messages::blob_id))
        .get_results(c))
}

pub fn message(conn: &mut DbConn, id: i64) -> QueryResult<MailMessage> {
    mail_messages::table.find(id).select(MailMessage::as_select()).first(conn)
}

pub fn message_by_blob(conn: &mut DbConn, blob_id: i64) -> QueryResult<Option<MailMessage>> {
    mail_messages::table
        .filter(mail_messages::blob_id.eq(blob_id))
        .select(MailMessage::as_select())
        .first(conn)
        .optional()
}

pub fn thread_messages(conn: &mut DbConn, thread_id: i64) -> QueryResult<Vec<MailMessage>> {
    mail_messages::table
        .filter(mail_messages::thread_id.eq(thread_id))
        .order((mail_messages::sent_at.asc(), mail_messages::id.asc()))
        .select(MailMessage::as_select())
        .load(conn)
}

/// External senders already on a thread (the merchant contact, once one wrote).
pub fn thread_senders(conn: &mut DbConn, thread_id: i64) -> QueryResult<Vec<String>> {
    mail_messages::table.filter(mail_messages::thread_id.eq(thread_id)).select(mail_messages::from_addr).load(conn)
}

pub fn set_classification(
    conn: &mut DbConn,
    id: i64,
    partner_id: Option<i64>,
    kind: &str,
    reason: &str,
) -> QueryResult<()> {
    diesel::update(mail_messages::table.find(id))
        .set((
            mail_messages::partner_id.eq(partner_id),
            mail_messages::kind.eq(kind),
            mail_messages::kind_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_status(conn: &mut DbConn, id: i64, status: &str, reason: Option<&str>) -> QueryResult<()> {
    diesel::update(mail_messages::table.find(id))
        .set((mail_messages::status.eq(status), mail_messages::status_reason.eq(reason)))
        .execute(conn)?;
    Ok(())
}

/// Filters of the triage inbox; empty fields do not filter.
#[derive(Debug, Default, Clone)]
pub struct InboxFilter {
    pub partner_id: Option<i64>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub unassigned: bool,
    pub from: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    pub search: Option<String>,
}

/// One row of the inbox list.
#[derive(Queryable, Debug, Clone)]
pub struct InboxRow {
    pub id: i64,
    pub from_addr: String,
    pub from_name: String,
    pub subject: String,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub sent_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    pub kind: String,
    pub status: String,
    pub thread_id: i64,
    pub partner_code: Option<String>,
    pub attachments: i64,
}

/// The inbox filter's query. A macro, so that its backend is the one of the connection
/// it runs on (see [`crate::with_conn`]).
macro_rules! inbox_query {
    ($f:expr) => {{
        let f: &InboxFilter = $f;
        let mut q = mail_messages::table.into_boxed();
        if let Some(p) = f.partner_id {
            q = q.filter(mail_messages::partner_id.eq(p));
        }
        if let Some(k) = &f.kind {
            q = q.filter(mail_messages::kind.eq(k.clone()));
        }
        if let Some(s) = &f.status {
            q = q.filter(mail_messages::status.eq(s.clone()));
        }
        if f.unassigned {
            let assigned = mail_threads::table.filter(mail_threads::request_id.is_not_null()).select(mail_threads::id);
            q = q.filter(mail_messages::thread_id.ne_all(assigned));
        }
        if let Some(from) = f.from {
            q = q.filter(mail_messages::created_at.ge(from));
        }
        if let Some(until) = f.until {
            q = q.filter(mail_messages::created_at.lt(until));
        }
        if let Some(s) = &f.search {
            // Folded in Rust on both sides, so SQLite and PostgreSQL find the same mails.
            let like = format!("%{}%", super::classify::fold(s).replace(['%', '_', '\\'], ""));
            q = q.filter(mail_messages::search_text.like(like));
        }
        q
    }};
}

/// How many messages the filter finds.
pub fn inbox_count(conn: &mut DbConn, f: &InboxFilter) -> QueryResult<i64> {
    crate::with_conn!(conn, |c| inbox_query!(f).count().get_result(c))
}

/// One page of the inbox and the filter's total. Only the listed columns are read (a
/// message's bodies can be large); partner codes come from `partners`, already loaded.
pub fn inbox(
    conn: &mut DbConn,
    f: &InboxFilter,
    offset: i64,
    limit: i64,
    partners: &[crate::hub::partners::Brief],
) -> QueryResult<(Vec<InboxRow>, i64)> {
    // Timestamps through `Ts`: diesel's own reading of SQLite's text was a third of the
    // inbox's instructions (callgrind, session 25).
    type Listed = (i64, String, String, String, crate::db::OptTs, crate::db::Ts, String, String, i64, Option<i64>);
    let total = inbox_count(conn, f)?;
    let rows: Vec<Listed> = crate::with_conn!(conn, |c| inbox_query!(f)
        .order((mail_messages::created_at.desc(), mail_messages::id.desc()))
        .offset(offset)
        .limit(limit)
        .select((
            mail_messages::id,
            mail_messages::from_addr,
            mail_messages::from_name,
            mail_messages::subject,
            mail_messages::sent_at,
            mail_messages::created_at,
            mail_messages::kind,
            mail_messages::status,
            mail_messages::thread_id,
            mail_messages::partner_id,
        ))
        .load(c)?);
    let ids: Vec<i64> = rows.iter().map(|m| m.0).collect();
    let counts: Vec<(i64, i64)> = crate::with_conn!(conn, |c| mail_attachments::table
        .filter(crate::db::in_any(mail_attachments::message_id, ids))
        .group_by(mail_attachments::message_id)
        .select((mail_attachments::message_id, diesel::dsl::count_star()))
        .load(c)?);
    let out = rows
        .into_iter()
        .map(|(id, from_addr, from_name, subject, sent_at, created_at, kind, status, thread_id, partner_id)| InboxRow {
            attachments: counts.iter().find(|c| c.0 == id).map(|c| c.1).unwrap_or(0),
            partner_code: partner_id.and_then(|p| partners.iter().find(|c| c.id == p).map(|c| c.code.clone())),
            id,
            from_addr,
            from_name,
            subject,
            sent_at: sent_at.0,
            created_at: created_at.0,
            kind,
            status,
            thread_id,
        })
        .collect();
    Ok((out, total))
}

/// The next `limit` inbox messages of the filter after id `after` (exports go by id).
pub fn inbox_after(conn: &mut DbConn, f: &InboxFilter, after: i64, limit: i64) -> QueryResult<Vec<MailMessage>> {
    crate::with_conn!(conn, |c| inbox_query!(f)
        .filter(mail_messages::id.gt(after))
        .order(mail_messages::id.asc())
        .limit(limit)
        .select(MailMessage::as_select())
        .load(c))
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_attachments)]
pub struct AttachmentInfo {
    pub id: i64,
    pub message_id: i64,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub omitted_reason: Option<String>,
}

/// An attachment row; `content` is None when the file was over the size limit.
#[derive(Insertable)]
#[diesel(table_name = mail_attachments, treat_none_as_default_value = false)]
pub struct NewAttachment<'a> {
    pub message_id: i64,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub content: Option<&'a [u8]>,
    pub omitted_reason: Option<String>,
}

/// Every attachment of a message (or of a batch), a thousand rows a statement: a
/// message may carry any number of parts, and a statement takes at most 32,766 values
/// on SQLite (65,535 on PostgreSQL).
pub fn insert_attachments(conn: &mut DbConn, rows: &[NewAttachment<'_>]) -> QueryResult<()> {
    for chunk in rows.chunks(1000) {
        crate::with_conn!(conn, |c| diesel::insert_into(mail_attachments::table).values(chunk).execute(c))?;
    }
    Ok(())
}

pub fn attachments_of(conn: &mut DbConn, message_ids: &[i64]) -> QueryResult<Vec<AttachmentInfo>> {
    mail_attachments::table
        .filter(mail_attachments::message_id.eq_any(message_ids))
        .order(mail_attachments::id.asc())
        .select(AttachmentInfo::as_select())
        .load(conn)
}

diesel::define_sql_function!(
    /// SQL `substr` over bytes (a blob on SQLite, a bytea on PostgreSQL), from 1.
    fn substr(x: diesel::sql_types::Nullable<diesel::sql_types::Binary>, start: diesel::sql_types::Integer, len: diesel::sql_types::Integer) -> diesel::sql_types::Nullable<diesel::sql_types::Binary>);

/// The first `n` bytes of each stored attachment of these messages, by attachment
/// id: enough to tell what a file is without reading every file of a thread.
pub fn attachment_heads(conn: &mut DbConn, message_ids: &[i64], n: i32) -> QueryResult<Vec<(i64, Vec<u8>)>> {
    let rows: Vec<(i64, Option<Vec<u8>>)> = mail_attachments::table
        .filter(mail_attachments::message_id.eq_any(message_ids))
        .filter(mail_attachments::content.is_not_null())
        .select((mail_attachments::id, substr(mail_attachments::content, 1, n)))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(id, head)| head.map(|h| (id, h))).collect())
}

pub fn attachment_content(
    conn: &mut DbConn,
    message_id: i64,
    id: i64,
) -> QueryResult<(AttachmentInfo, Option<Vec<u8>>)> {
    let info = mail_attachments::table
        .filter(mail_attachments::id.eq(id))
        .filter(mail_attachments::message_id.eq(message_id))
        .select(AttachmentInfo::as_select())
        .first(conn)?;
    let content = mail_attachments::table.find(id).select(mail_attachments::content).first(conn)?;
    Ok((info, content))
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_rules)]
pub struct RuleRow {
    pub id: i64,
    pub kind: String,
    pub pattern: String,
    pub enabled: bool,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
}

pub fn rules(conn: &mut DbConn) -> QueryResult<Vec<RuleRow>> {
    mail_rules::table.order((mail_rules::kind.asc(), mail_rules::pattern.asc())).select(RuleRow::as_select()).load(conn)
}

pub fn rule(conn: &mut DbConn, id: i64) -> QueryResult<RuleRow> {
    mail_rules::table.find(id).select(RuleRow::as_select()).first(conn)
}

pub fn insert_rule(conn: &mut DbConn, kind: &str, pattern: &str) -> QueryResult<i64> {
    diesel::insert_into(mail_rules::table)
        .values((
            mail_rules::kind.eq(kind),
            mail_rules::pattern.eq(pattern),
            mail_rules::enabled.eq(true),
            mail_rules::created_at.eq(crate::db::now()),
        ))
        .returning(mail_rules::id)
        .get_result(conn)
}

pub fn set_rule_enabled(conn: &mut DbConn, id: i64, enabled: bool) -> QueryResult<()> {
    diesel::update(mail_rules::table.find(id)).set(mail_rules::enabled.eq(enabled)).execute(conn)?;
    Ok(())
}

pub fn delete_rule(conn: &mut DbConn, id: i64) -> QueryResult<()> {
    diesel::delete(mail_rules::table.find(id)).execute(conn)?;
    Ok(())
}

/// Ties a conversation to a connection request; its messages leave the to-do list.
/// False when the conversation is already tied to one: the update is conditional, so of
/// two people opening a request from the same mail at once only one wins (a check,
/// then a plain update, let both through on PostgreSQL).
pub fn attach_thread(conn: &mut DbConn, thread_id: i64, request_id: i64) -> QueryResult<bool> {
    let n = diesel::update(mail_threads::table.find(thread_id).filter(mail_threads::request_id.is_null()))
        .set(mail_threads::request_id.eq(Some(request_id)))
        .execute(conn)?;
    if n == 0 {
        return Ok(false);
    }
    diesel::update(
        mail_messages::table.filter(mail_messages::thread_id.eq(thread_id)).filter(mail_messages::status.eq("new")),
    )
    .set(mail_messages::status.eq("attached"))
    .execute(conn)?;
    Ok(true)
}

/// Messages of the threads tied to a request, oldest first.
pub fn request_messages(conn: &mut DbConn, request_id: i64) -> QueryResult<Vec<MailMessage>> {
    let threads = mail_threads::table.filter(mail_threads::request_id.eq(request_id)).select(mail_threads::id);
    crate::with_conn!(conn, |c| mail_messages::table
        .filter(mail_messages::thread_id.eq_any(threads))
        .order((mail_messages::sent_at.asc(), mail_messages::id.asc()))
        .select(MailMessage::as_select())
        .load(c))
}

/// The first conversation tied to a request (where replies to our own mail belong).
pub fn thread_of_request(conn: &mut DbConn, request_id: i64) -> QueryResult<Option<i64>> {
    mail_threads::table
        .filter(mail_threads::request_id.eq(request_id))
        .order(mail_threads::id.asc())
        .select(mail_threads::id)
        .first(conn)
        .optional()
}
