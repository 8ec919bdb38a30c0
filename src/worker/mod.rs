//! The durable job queue and the worker that runs it.
//!
//! Rules:
//! - [`enqueue`] runs inside the caller's transaction (transactional outbox): a
//!   rolled-back change enqueues nothing, a committed one is never lost.
//! - A claim is a lease: a worker killed mid-job loses nothing, the lease expires and
//!   the job runs again. Handlers must therefore be idempotent (they key their side
//!   effect, e.g. a mail's outbox row, and skip what is already done).
//! - The claim commits before the job runs; the job never runs inside the claim
//!   transaction (a long job there deadlocked crates.io's worker).
//! - Failures retry with exponential backoff and jitter; after the last attempt the
//!   job is dead, with its last error, until an admin retries or discards it.

pub mod handlers;
pub mod models;
pub mod runner;
pub mod schedule;
pub mod wake;

use chrono::NaiveDateTime;

use crate::audit::{self, Actor};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};

/// How a job is enqueued.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub run_at: Option<NaiveDateTime>,
    pub max_attempts: i64,
    /// A second enqueue with the same key is a no-op (the key stays with the job).
    pub unique_key: Option<String>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions { run_at: None, max_attempts: 8, unique_key: None }
    }
}

/// Adds a job in the caller's transaction. Returns its id, or None when a job with
/// the same unique key exists.
pub fn enqueue(
    conn: &mut DbConn,
    kind: &str,
    payload: &serde_json::Value,
    opts: &JobOptions,
) -> AppResult<Option<i64>> {
    let now = crate::db::now();
    let payload = payload.to_string();
    let id = models::insert(
        conn,
        &models::NewJob {
            kind,
            payload: &payload,
            unique_key: opts.unique_key.as_deref(),
            run_at: opts.run_at.unwrap_or(now),
            max_attempts: opts.max_attempts.max(1),
            created_at: now,
        },
    )?;
    // No "enqueued" event: the job's created_at says it, at half the cost.
    if id.is_some() && opts.run_at.is_none_or(|t| t <= now) {
        wake::note_enqueued();
    }
    Ok(id)
}

/// Adds many jobs of one kind in the caller's transaction, one statement per 1,000:
/// what a producer with a batch in hand (a page of bank transactions to notify) does
/// instead of an [`enqueue`] each. A job whose unique key is taken is skipped, as
/// [`enqueue`] skips it. Returns how many were added.
pub fn enqueue_many(conn: &mut DbConn, kind: &str, jobs: &[(serde_json::Value, JobOptions)]) -> AppResult<usize> {
    let now = crate::db::now();
    let payloads: Vec<String> = jobs.iter().map(|(p, _)| p.to_string()).collect();
    let rows: Vec<models::NewJob<'_>> = jobs
        .iter()
        .zip(&payloads)
        .map(|((_, opts), payload)| models::NewJob {
            kind,
            payload,
            unique_key: opts.unique_key.as_deref(),
            run_at: opts.run_at.unwrap_or(now),
            max_attempts: opts.max_attempts.max(1),
            created_at: now,
        })
        .collect();
    let mut added = 0;
    for chunk in rows.chunks(1000) {
        added += models::insert_many(conn, chunk)?;
    }
    if added > 0 && jobs.iter().any(|(_, o)| o.run_at.is_none_or(|t| t <= now)) {
        wake::note_enqueued();
    }
    Ok(added)
}

/// Admin: a dead job back to the queue (audited).
pub fn retry_dead(conn: &mut DbConn, actor: &Actor, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let job = models::job(conn, id)?;
        if models::revive(conn, id, crate::db::now())? != 1 {
            return Err(AppError::Validation("Chỉ thử lại được việc đã hỏng (dead).".into()));
        }
        models::event(conn, id, "retried", Some(&actor.label), None)?;
        audit::record(
            conn,
            actor,
            "job",
            id,
            "retry",
            Some(serde_json::json!({"state": "dead", "last_error": job.last_error})),
            Some(serde_json::json!({"state": "queued"})),
        )?;
        Ok(())
    })
}

/// Admin: gives up on a dead job (audited; its history stays).
pub fn discard_dead(conn: &mut DbConn, actor: &Actor, id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let job = models::job(conn, id)?;
        if models::discard(conn, id, crate::db::now())? != 1 {
            return Err(AppError::Validation("Chỉ bỏ qua được việc đã hỏng (dead).".into()));
        }
        models::event(conn, id, "discarded", Some(&actor.label), None)?;
        audit::record(
            conn,
            actor,
            "job",
            id,
            "discard",
            Some(serde_json::json!({"state": "dead", "last_error": job.last_error})),
            Some(serde_json::json!({"state": "discarded"})),
        )?;
        Ok(())
    })
}
