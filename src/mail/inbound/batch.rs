//! Many messages at once (CLI import, Maildir, a multi-file upload, the demo): the same
//! reports as [`service::ingest_with`] for each message, with two commits per batch
//! instead of two per message.
//!
//! 1. The raw bytes of the whole batch are inserted in one statement and committed
//!    (`ON CONFLICT DO NOTHING`: bytes stored before are duplicates, as one by one);
//! 2. each message is parsed outside any transaction, behind the same panic guard;
//! 3. the batch is stored in one transaction, in a handful of statements: the stored
//!    Message-IDs, sent mails and subject matches the whole batch names are read at
//!    once, every message is threaded and classified in memory in order (each seeing
//!    what the ones before it did, as one by one would), then the new threads, the
//!    messages and their attachments are each inserted in one statement;
//! 4. if the database refuses any of that (a Message-ID stored meanwhile, data it does
//!    not take), it is undone and the batch is stored again message by message, each
//!    under its own savepoint: the failing message is rolled back alone and its blob
//!    marked; the others are kept.
//!
//! A crash after 1 leaves the batch's blobs `received`, retryable as today.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, NaiveDateTime};
use diesel::connection::SimpleConnection;

use super::classify;
use super::models::{self, Thread};
use super::parse::ParsedMail;
use super::service::{self, Decided, Found, IngestReport, Known, MessageTexts, Read, Stored};
use crate::config::MailConfig;
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};

/// A batch is ingested once it holds this many messages…
pub const MAX_MESSAGES: usize = 100;
/// …or this many bytes, so memory does not grow with the input.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// One arriving message: its bytes and the file (or mailbox position) it came from.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub raw: Vec<u8>,
    pub file: Option<String>,
}

/// The savepoint each message of a batch is stored under. Released and taken again
/// in one round trip; PostgreSQL would otherwise keep every one open to the commit.
const SAVEPOINT: &str = "SAVEPOINT mail_batch";
const NEXT_SAVEPOINT: &str = "RELEASE SAVEPOINT mail_batch; SAVEPOINT mail_batch";
const UNDO: &str = "ROLLBACK TO SAVEPOINT mail_batch";
/// Around the whole batch's statements, so a refusal undoes them before the batch is
/// stored again message by message.
const TOGETHER: &str = "SAVEPOINT mail_together";
const TOGETHER_DONE: &str = "RELEASE SAVEPOINT mail_together";
const TOGETHER_UNDO: &str = "ROLLBACK TO SAVEPOINT mail_together";

/// Stores `batch` (at most [`MAX_MESSAGES`] / [`MAX_BYTES`] is the callers' rule; see
/// [`Batcher`]) and returns one report per message, in order.
pub fn ingest_batch(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    source: &str,
    batch: &[Incoming],
) -> AppResult<Vec<IngestReport>> {
    let files: Vec<Option<String>> = batch.iter().map(|m| service::clean_file_name(m.file.as_deref())).collect();
    let shas: Vec<String> = batch.iter().map(|m| service::sha256_hex(&m.raw)).collect();
    // The same bytes twice in one batch: the later copy is a duplicate of the first.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let copy: Vec<bool> = shas
        .iter()
        .enumerate()
        .map(|(i, sha)| match first_of.entry(sha.as_str()) {
            Entry::Occupied(_) => true,
            Entry::Vacant(v) => {
                v.insert(i);
                false
            }
        })
        .collect();

    // 1. The raw bytes, durable before anything reads them.
    let rows: Vec<(&str, &[u8], Option<&str>)> = (0..batch.len())
        .filter(|&i| !copy[i])
        .map(|i| (shas[i].as_str(), batch[i].raw.as_slice(), files[i].as_deref()))
        .collect();
    let at = now();
    let inserted = crate::db::tx(conn, |c| models::insert_blobs(c, &rows, source, at))?;
    let blob_of: HashMap<String, i64> = inserted.into_iter().map(|(id, sha)| (sha, id)).collect();

    // 2. Parsed outside any transaction; bytes stored before are reported as such.
    let mut reports: Vec<Option<IngestReport>> = vec![None; batch.len()];
    let mut reads: Vec<(usize, i64, Read)> = Vec::with_capacity(rows.len());
    for i in (0..batch.len()).filter(|&i| !copy[i]) {
        match blob_of.get(&shas[i]) {
            Some(&blob_id) => reads.push((i, blob_id, service::read(cfg, &batch[i].raw))),
            None => reports[i] = Some(service::duplicate_blob(conn, known, &shas[i], files[i].as_deref())?),
        }
    }

    // 3. Stored in one transaction, each message under its own savepoint.
    let stored = crate::db::tx(conn, |c| store_all(c, cfg, known, reads))?;
    for (i, report) in stored {
        reports[i] = Some(IngestReport { file: files[i].clone(), ..report });
    }
    // Later copies, once the first is stored: what one by one would have reported.
    for i in (0..batch.len()).filter(|&i| copy[i]) {
        reports[i] = Some(service::duplicate_blob(conn, known, &shas[i], files[i].as_deref())?);
    }
    Ok(reports.into_iter().map(Option::unwrap_or_default).collect())
}

fn store_all(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    reads: Vec<(usize, i64, Read)>,
) -> AppResult<Vec<(usize, IngestReport)>> {
    conn.batch_execute(TOGETHER)?;
    match store_together(conn, cfg, known, &reads) {
        Ok(out) => {
            conn.batch_execute(TOGETHER_DONE)?;
            Ok(out)
        }
        Err(e) => {
            tracing::info!(error = %e, messages = reads.len(), "a batch is stored again message by message");
            conn.batch_execute(TOGETHER_UNDO)?;
            store_each(conn, cfg, known, reads)
        }
    }
}

/// Where the first copy of a repeated Message-ID is.
enum First {
    Stored(i64),
    /// The message at this index of the batch's new rows.
    InBatch(usize),
}

/// What became of one read message of a batch stored together.
enum Outcome {
    Done(Box<IngestReport>),
    /// Index into the new rows.
    Stored(usize),
    Duplicate(i64, First),
}

/// A message to insert, decided in memory.
struct NewRow<'a> {
    blob_id: i64,
    parsed: &'a ParsedMail,
    texts: MessageTexts,
    partner: Option<(i64, String)>,
    kind: classify::Kind,
    reason: String,
    /// A stored thread's id, or one of [`Threads::NEW`]'s until the insert.
    thread: i64,
    request_id: Option<i64>,
}

/// The threads a batch reads and writes, kept in memory to its end, each as the
/// messages before have left it: what one by one would read from the database.
#[derive(Default)]
struct Threads {
    known: HashMap<i64, Thread>,
    by_norm: HashMap<String, Vec<i64>>,
    /// Stored threads whose activity or partner moved.
    changed: BTreeSet<i64>,
    /// Threads this batch opens, in order, by their provisional ids.
    new: Vec<i64>,
}

impl Threads {
    /// Provisional ids of new threads: above any real id, in the order they are opened,
    /// so they sort as the database's ids will.
    const NEW: i64 = 1 << 62;

    fn add(&mut self, t: Thread) -> i64 {
        let id = t.id;
        if let Entry::Vacant(v) = self.known.entry(id) {
            self.by_norm.entry(t.norm_subject.clone()).or_default().push(id);
            v.insert(t);
        }
        id
    }

    /// [`models::thread_by_subject`] over what the batch knows: among the subject's
    /// threads active since `since`, most recent first, [`models::pick_by_subject`].
    fn by_subject(&self, norm: &str, partner_id: Option<i64>, since: NaiveDateTime) -> Option<i64> {
        let mut candidates: Vec<&Thread> =
            self.by_norm.get(norm)?.iter().filter_map(|id| self.known.get(id)).filter(|t| t.last_at >= since).collect();
        candidates.sort_by_key(|t| std::cmp::Reverse((t.last_at, t.id)));
        models::pick_by_subject(candidates, partner_id).map(|t| t.id)
    }

    /// [`models::touch_thread`] in memory.
    fn touch(&mut self, id: i64, partner_id: Option<i64>, at: NaiveDateTime) {
        if let Some(t) = self.known.get_mut(&id)
            && let Some(moved) = models::activity_after(t, partner_id, at)
        {
            (t.last_at, t.partner_id) = moved;
            if id < Self::NEW {
                self.changed.insert(id);
            }
        }
    }

    fn open(&mut self, partner_id: Option<i64>, subject: &str, norm: String, at: NaiveDateTime) -> i64 {
        let id = Self::NEW + self.new.len() as i64;
        self.new.push(id);
        let subject = subject.to_string();
        self.add(Thread { id, partner_id, subject, norm_subject: norm, first_at: at, last_at: at, request_id: None })
    }
}

/// Stores the batch's messages together (see the module's notes): the same rows and
/// reports as [`store_each`], in a handful of statements instead of several per message.
fn store_together(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    reads: &[(usize, i64, Read)],
) -> AppResult<Vec<(usize, IngestReport)>> {
    let parsed: Vec<&ParsedMail> = reads
        .iter()
        .filter_map(|r| match &r.2 {
            Read::Parsed(p) => Some(p.as_ref()),
            Read::Refused(..) => None,
        })
        .collect();
    // Every Message-ID the batch names, stored already: duplicates and reply threads.
    let mut named: Vec<String> = parsed
        .iter()
        .flat_map(|p| p.message_id.iter().cloned().chain(service::referenced_ids(p)))
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let mut threads = Threads::default();
    let mut stored: HashMap<String, (i64, i64)> = HashMap::new();
    for (id, mid, t) in models::threads_by_message_ids(conn, &named)? {
        if let Some(mid) = mid {
            stored.insert(mid, (id, t.id));
        }
        threads.add(t);
    }
    // Our sent mails they answer, oldest first, and the recent threads of their subjects.
    named.retain(|m| !stored.contains_key(m));
    let sent = crate::mail::outbound::requests_of_message_ids(conn, &named)?;
    let at_of = |p: &ParsedMail| p.sent_at.unwrap_or_else(now);
    let norms: Vec<String> = parsed.iter().map(|p| classify::normalise_subject(&p.subject)).collect();
    let wanted: Vec<&str> =
        norms.iter().filter(|n| !n.is_empty()).map(String::as_str).collect::<BTreeSet<_>>().into_iter().collect();
    if let Some(since) = parsed.iter().map(|p| at_of(p) - Duration::days(60)).min() {
        for t in models::threads_by_subjects(conn, &wanted, since)? {
            threads.add(t);
        }
    }

    let mut thread_of_request: HashMap<i64, Option<i64>> = HashMap::new();
    let mut in_batch: HashMap<&str, (usize, i64)> = HashMap::new();
    let mut rows: Vec<NewRow> = Vec::with_capacity(parsed.len());
    let mut outcomes: Vec<(usize, Outcome)> = Vec::with_capacity(reads.len());
    let mut norms = norms.into_iter();
    for (i, blob_id, read) in reads {
        let p = match read {
            Read::Parsed(p) => p.as_ref(),
            Read::Refused(status, why) => {
                outcomes.push((*i, Outcome::Done(Box::new(service::refused(conn, *blob_id, status, why.clone())?))));
                continue;
            }
        };
        let norm = norms.next().unwrap_or_default();
        if let Some(mid) = p.message_id.as_deref() {
            let first = match (in_batch.get(mid), stored.get(mid)) {
                (Some(&(k, _)), _) => Some(First::InBatch(k)),
                (None, Some(&(id, _))) => Some(First::Stored(id)),
                (None, None) => None,
            };
            if let Some(first) = first {
                outcomes.push((*i, Outcome::Duplicate(*blob_id, first)));
                continue;
            }
        }
        // The thread of the newest message it refers to (this batch's are the newest)…
        let refs = service::referenced_ids(p);
        let by_ids = refs
            .iter()
            .filter_map(|r| in_batch.get(r.as_str()))
            .max()
            .map(|&(_, t)| t)
            .or_else(|| refs.iter().filter_map(|r| stored.get(r)).max().map(|&(_, t)| t));
        // …else the conversation of the request our mail it answers belongs to…
        let by_ids = match by_ids {
            Some(t) => Some(t),
            None => match sent.iter().find(|(m, _)| refs.contains(m)).map(|&(_, r)| r) {
                Some(request) => request_thread(conn, &mut threads, &mut thread_of_request, request)?,
                None => None,
            },
        };
        // …else a recent thread of the same subject.
        let at = at_of(p);
        let thread = match by_ids {
            Some(t) => Some(t),
            None if norm.is_empty() => None,
            None => threads.by_subject(&norm, service::subject_partner(known, p), at - Duration::days(60)),
        };
        let current = thread.and_then(|t| threads.known.get(&t));
        let (partner, kind, reason) = service::decide(cfg, known, p, current, current.is_some());
        let request_id = current.and_then(|t| t.request_id);
        let partner_id = partner.as_ref().map(|x| x.id);
        let thread = match thread {
            Some(t) => {
                threads.touch(t, partner_id, at);
                t
            }
            None => threads.open(partner_id, &p.subject, norm, at),
        };
        if let Some(mid) = p.message_id.as_deref() {
            in_batch.insert(mid, (rows.len(), thread));
        }
        outcomes.push((*i, Outcome::Stored(rows.len())));
        rows.push(NewRow {
            blob_id: *blob_id,
            parsed: p,
            texts: service::message_texts(p)?,
            partner: partner.map(|x| (x.id, x.code)),
            kind,
            reason,
            thread,
            request_id,
        });
    }

    // The writes: new threads, moved threads, messages, attachments, blobs.
    let opened: Vec<models::NewThread> = threads
        .new
        .iter()
        .filter_map(|id| threads.known.get(id))
        .map(|t| models::NewThread {
            partner_id: t.partner_id,
            subject: &t.subject,
            norm_subject: &t.norm_subject,
            first_at: t.first_at,
            last_at: t.last_at,
        })
        .collect();
    let ids = models::insert_threads(conn, &opened)?;
    if ids.len() != threads.new.len() {
        return Err(AppError::internal(anyhow::anyhow!("{} of {} threads inserted", ids.len(), threads.new.len())));
    }
    let real = |t: i64| if t >= Threads::NEW { ids[(t - Threads::NEW) as usize] } else { t };
    for id in &threads.changed {
        if let Some(t) = threads.known.get(id) {
            models::set_thread_activity(conn, *id, t.last_at, t.partner_id)?;
        }
    }
    let decided: Vec<Decided> = rows
        .iter()
        .map(|r| Decided {
            partner_id: r.partner.as_ref().map(|x| x.0),
            kind: r.kind,
            reason: &r.reason,
            thread_id: real(r.thread),
        })
        .collect();
    let messages: Vec<models::NewMessage> =
        rows.iter().zip(&decided).map(|(r, d)| service::new_message(r.blob_id, r.parsed, &r.texts, d)).collect();
    let id_of_blob: HashMap<i64, i64> =
        models::insert_messages(conn, &messages)?.into_iter().map(|(id, blob)| (blob, id)).collect();
    let message_ids: Vec<i64> = rows.iter().filter_map(|r| id_of_blob.get(&r.blob_id).copied()).collect();
    if message_ids.len() != rows.len() {
        return Err(AppError::internal(anyhow::anyhow!("{} of {} messages inserted", message_ids.len(), rows.len())));
    }
    let attachments: Vec<models::NewAttachment> =
        rows.iter().zip(&message_ids).flat_map(|(r, id)| service::attachment_rows(cfg, r.parsed, *id)).collect();
    models::insert_attachments(conn, &attachments)?;
    models::set_blobs_stored(conn, &rows.iter().map(|r| r.blob_id).collect::<Vec<_>>())?;
    // A reply in a conversation already tied to a request lands on its timeline.
    for (r, id) in rows.iter().zip(&message_ids) {
        if r.request_id.is_some() {
            crate::hub::service::on_mail_stored(conn, *id)?;
        }
    }

    let mut out = Vec::with_capacity(outcomes.len());
    for (i, outcome) in outcomes {
        let report = match outcome {
            Outcome::Done(report) => *report,
            Outcome::Stored(k) => {
                let r = &rows[k];
                let stored = Stored {
                    id: message_ids[k],
                    thread_id: real(r.thread),
                    request_id: r.request_id,
                    partner: r.partner.as_ref().map(|x| x.1.clone()),
                    kind: r.kind,
                };
                service::stored_report(stored, service::parsed_report(r.blob_id, r.parsed))
            }
            Outcome::Duplicate(blob_id, first) => {
                let first = match first {
                    First::Stored(id) => id,
                    First::InBatch(k) => message_ids[k],
                };
                service::duplicate_message(conn, known, blob_id, first)?
            }
        };
        out.push((i, report));
    }
    Ok(out)
}

/// The conversation of `request` (its oldest thread), read once per batch.
fn request_thread(
    conn: &mut DbConn,
    threads: &mut Threads,
    cache: &mut HashMap<i64, Option<i64>>,
    request: i64,
) -> AppResult<Option<i64>> {
    let id = match cache.get(&request) {
        Some(id) => *id,
        None => {
            let id = models::thread_of_request(conn, request)?;
            cache.insert(request, id);
            id
        }
    };
    if let Some(id) = id
        && !threads.known.contains_key(&id)
    {
        threads.add(models::thread(conn, id)?);
    }
    Ok(id)
}

/// Stores the batch one message at a time, each under its own savepoint.
fn store_each(
    conn: &mut DbConn,
    cfg: &MailConfig,
    known: &Known,
    reads: Vec<(usize, i64, Read)>,
) -> AppResult<Vec<(usize, IngestReport)>> {
    let mut out = Vec::with_capacity(reads.len());
    let mut stored_blobs = Vec::with_capacity(reads.len());
    let mut savepoint = false;
    for (i, blob_id, read) in reads {
        let parsed = match read {
            Read::Parsed(p) => p,
            Read::Refused(status, why) => {
                out.push((i, service::refused(conn, blob_id, status, why)?));
                continue;
            }
        };
        conn.batch_execute(if savepoint { NEXT_SAVEPOINT } else { SAVEPOINT })?;
        savepoint = true;
        let report = service::parsed_report(blob_id, &parsed);
        let done = match service::find_thread(conn, &parsed) {
            Ok(Found::Duplicate(first)) => service::duplicate_message(conn, known, blob_id, first),
            Ok(Found::Thread(thread)) => service::store(conn, cfg, known, blob_id, &parsed, thread, false).map(|s| {
                stored_blobs.push(blob_id);
                service::stored_report(s, report.clone())
            }),
            Err(e) => Err(e),
        };
        let report = match done {
            Ok(r) => r,
            Err(e) => {
                // Only this message's statements are undone; the batch goes on.
                conn.batch_execute(UNDO)?;
                match e {
                    // Another path stored the same Message-ID meanwhile.
                    AppError::Conflict(_) => service::lost_race(conn, report)?,
                    e => not_stored(conn, report, &e)?,
                }
            }
        };
        out.push((i, report));
    }
    models::set_blobs_stored(conn, &stored_blobs)?;
    Ok(out)
}

/// A message the database refused: its blob stays `received`, with the reason, for a
/// person to retry from the list of mail not processed.
fn not_stored(conn: &mut DbConn, mut report: IngestReport, e: &AppError) -> AppResult<IngestReport> {
    tracing::warn!(blob = report.blob_id, error = %e, "cannot store a message of a batch");
    let msg = format!("Chưa lưu được thư: {e}");
    models::set_blob_status(conn, report.blob_id, "received", Some(&msg))?;
    report.status = "received".into();
    report.error = Some(msg);
    Ok(report)
}

/// Collects arriving messages into bounded batches; `T` is what the caller needs back
/// with each report (a path to move, a line to print).
pub struct Batcher<T> {
    pending: Vec<T>,
    messages: Vec<Incoming>,
    bytes: usize,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Batcher { pending: Vec::new(), messages: Vec::new(), bytes: 0 }
    }
}

impl<T> Batcher<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a message; true once the batch is full and should be ingested.
    pub fn push(&mut self, tag: T, raw: Vec<u8>, file: Option<String>) -> bool {
        self.bytes += raw.len();
        self.pending.push(tag);
        self.messages.push(Incoming { raw, file });
        self.messages.len() >= MAX_MESSAGES || self.bytes >= MAX_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Ingests what was collected (nothing when empty); each report with its tag, in order.
    pub fn ingest(
        &mut self,
        conn: &mut DbConn,
        cfg: &MailConfig,
        known: &Known,
        source: &str,
    ) -> AppResult<Vec<(T, IngestReport)>> {
        if self.messages.is_empty() {
            return Ok(Vec::new());
        }
        let messages = std::mem::take(&mut self.messages);
        self.bytes = 0;
        let reports = ingest_batch(conn, cfg, known, source, &messages)?;
        Ok(std::mem::take(&mut self.pending).into_iter().zip(reports).collect())
    }
}
