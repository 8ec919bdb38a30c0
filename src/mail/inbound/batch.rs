//! Many messages at once (CLI import, Maildir, a multi-file upload, the demo): the same
//! reports as [`service::ingest_with`] for each message, with two commits per batch
//! instead of two per message.
//!
//! 1. The raw bytes of the whole batch are inserted in one statement and committed
//!    (`ON CONFLICT DO NOTHING`: bytes stored before are duplicates, as one by one);
//! 2. each message is parsed outside any transaction, behind the same panic guard;
//! 3. the batch is stored in one transaction with a savepoint per message: a message
//!    that fails (a Message-ID stored meanwhile, data the database refuses) is rolled
//!    back alone and its blob marked; the others are kept.
//!
//! A crash after 1 leaves the batch's blobs `received`, retryable as today.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use diesel::connection::SimpleConnection;

use super::models;
use super::service::{self, Found, IngestReport, Known, Read};
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
