//! The job table's queries. The dialects differ in one place on the hot path, the
//! claim: PostgreSQL locks rows with `FOR UPDATE SKIP LOCKED`, without which two
//! workers claim the same job; SQLite's statement holds the write lock.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{job_events, jobs};

#[derive(Queryable, QueryableByName, Selectable, Debug, Clone)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub unique_key: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub run_at: NaiveDateTime,
    pub attempts: i64,
    pub max_attempts: i64,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub locked_until: Option<NaiveDateTime>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub done_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub dead_at: Option<NaiveDateTime>,
}

impl Job {
    /// queued, running, done or dead.
    pub fn state(&self, now: NaiveDateTime) -> &'static str {
        if self.done_at.is_some() {
            "done"
        } else if self.dead_at.is_some() {
            "dead"
        } else if self.locked_until.is_some_and(|t| t > now) {
            "running"
        } else {
            "queued"
        }
    }
}

// None is NULL (the column's default), so SQLite can take many rows at once.
#[derive(Insertable)]
#[diesel(table_name = jobs, treat_none_as_default_value = false)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a str,
    pub unique_key: Option<&'a str>,
    pub run_at: NaiveDateTime,
    pub max_attempts: i64,
    pub created_at: NaiveDateTime,
}

/// Inserts a job; with a unique key already present it does nothing and returns None.
pub fn insert(conn: &mut DbConn, job: &NewJob<'_>) -> QueryResult<Option<i64>> {
    if job.unique_key.is_none() {
        return diesel::insert_into(jobs::table).values(job).returning(jobs::id).get_result(conn).map(Some);
    }
    crate::with_conn!(conn, |c| diesel::insert_into(jobs::table)
        .values(job)
        .on_conflict(jobs::unique_key)
        .do_nothing()
        .returning(jobs::id)
        .get_result(c)
        .optional())
}

/// Many jobs in one statement; a job whose unique key is already taken is skipped, as
/// [`insert`] skips it. Returns how many were added.
pub fn insert_many(conn: &mut DbConn, batch: &[NewJob<'_>]) -> QueryResult<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    crate::with_conn!(conn, |c| diesel::insert_into(jobs::table)
        .values(batch)
        .on_conflict(jobs::unique_key)
        .do_nothing()
        .execute(c))
}

pub fn event(
    conn: &mut DbConn,
    job_id: i64,
    event: &str,
    worker: Option<&str>,
    message: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(job_events::table)
        .values((
            job_events::job_id.eq(job_id),
            job_events::at.eq(crate::db::now()),
            job_events::event.eq(event),
            job_events::worker.eq(worker),
            job_events::message.eq(message),
        ))
        .execute(conn)?;
    Ok(())
}

const DUE: &str = "SELECT id FROM jobs WHERE done_at IS NULL AND dead_at IS NULL AND run_at <= $3 \
                   AND (locked_until IS NULL OR locked_until < $3)";
const LEASE: &str = "UPDATE jobs SET locked_until = $1, locked_by = $2, attempts = attempts + 1";
const RETURNING: &str = "RETURNING id, kind, payload, unique_key, run_at, attempts, max_attempts, \
                         locked_until, locked_by, last_error, created_at, done_at, dead_at";

/// Claims up to `limit` due jobs for `worker` until `lease_until`, counting an attempt,
/// in one statement: the UPDATE leases the rows its subquery picks, oldest first.
/// PostgreSQL locks them `FOR UPDATE SKIP LOCKED` (without it two workers claim the
/// same job), and `= ANY(ARRAY(…))` runs that subquery once, where `IN (…)` may be
/// planned as a join that runs it again. SQLite holds the write lock for the statement.
/// (Diesel's DSL takes no subquery of the table being updated.)
pub fn claim(
    conn: &mut DbConn,
    worker: &str,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<Job>> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    let sql = match conn {
        DbConn::Pg(_) => {
            format!(
                "{LEASE} WHERE id = ANY(ARRAY({DUE} ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)) {RETURNING}"
            )
        }
        DbConn::Sqlite(_) => format!("{LEASE} WHERE id IN ({DUE} ORDER BY run_at, id LIMIT $4) {RETURNING}"),
    };
    // One text per backend: prepared once per connection.
    let claimed: Vec<Job> = crate::with_conn!(conn, |c| crate::db::cached(
        diesel::sql_query(&sql)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Text, _>(worker)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
    )
    .load(c)?);
    Ok(oldest_first(claimed))
}

// RETURNING comes in no promised order; jobs start oldest first.
fn oldest_first(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by_key(|j| (j.run_at, j.id));
    jobs
}

/// The worker's round when every outcome is a success: marks `done` succeeded (as
/// [`finish`] does) and claims up to `limit` due jobs (as [`claim`] does), atomically.
/// On PostgreSQL that is one statement, so one round trip and one commit where the two
/// were two of each. Its claim passes over the jobs it finishes: a job whose lease ran
/// out before its success was written would otherwise be leased again by the same
/// statement (test `db::a_round_finishes_only_its_own_jobs_and_never_reclaims_them`).
/// On SQLite it is the two statements in one transaction.
pub fn finish_and_claim(
    conn: &mut DbConn,
    worker: &str,
    done: &[i64],
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<Job>> {
    use diesel::sql_types::{Array, BigInt, Text, Timestamp};
    match conn {
        DbConn::Pg(c) => {
            let sql = format!(
                "WITH finished AS (UPDATE jobs SET done_at = $3, locked_until = NULL, last_error = NULL \
                 WHERE id = ANY($5) AND locked_by = $2 AND done_at IS NULL) \
                 {LEASE} WHERE id = ANY(ARRAY({DUE} AND id <> ALL($5) ORDER BY run_at, id LIMIT $4 \
                 FOR UPDATE SKIP LOCKED)) {RETURNING}"
            );
            let claimed: Vec<Job> = crate::db::cached(
                diesel::sql_query(sql)
                    .bind::<Timestamp, _>(lease_until)
                    .bind::<Text, _>(worker)
                    .bind::<Timestamp, _>(now)
                    .bind::<BigInt, _>(limit)
                    .bind::<Array<BigInt>, _>(done),
            )
            .load(c)?;
            Ok(oldest_first(claimed))
        }
        DbConn::Sqlite(_) => crate::db::tx(conn, |conn| {
            succeeded(conn, worker, done, now)?;
            claim(conn, worker, limit, now, lease_until)
        }),
    }
}

/// The outcome of one attempt, written back by the worker in a batch.
pub enum Outcome {
    Done,
    Retry { at: NaiveDateTime, error: String },
    Dead { error: String },
}

/// Writes outcomes, but only for jobs whose lease is still this worker's: a job whose
/// lease expired and went to another worker is that worker's to finish.
pub fn finish(conn: &mut DbConn, worker: &str, results: &[(i64, Outcome)], now: NaiveDateTime) -> QueryResult<usize> {
    let done: Vec<i64> = results.iter().filter(|(_, o)| matches!(o, Outcome::Done)).map(|(id, _)| *id).collect();
    // Successes alone (the hot path) are one statement, atomic by itself.
    if done.len() == results.len() {
        return succeeded(conn, worker, &done, now);
    }
    crate::db::tx(conn, |conn| {
        let mut written = succeeded(conn, worker, &done, now)?;
        for (id, outcome) in results {
            let mine =
                jobs::table.filter(jobs::id.eq(*id)).filter(jobs::locked_by.eq(worker)).filter(jobs::done_at.is_null());
            let (n, event, message) = match outcome {
                Outcome::Done => continue,
                Outcome::Retry { at, error } => (
                    diesel::update(mine)
                        .set((
                            jobs::run_at.eq(*at),
                            jobs::locked_until.eq(None::<NaiveDateTime>),
                            jobs::last_error.eq(Some(error)),
                        ))
                        .execute(conn)?,
                    "failed",
                    error,
                ),
                Outcome::Dead { error } => (
                    diesel::update(mine)
                        .set((
                            jobs::dead_at.eq(Some(now)),
                            jobs::locked_until.eq(None::<NaiveDateTime>),
                            jobs::last_error.eq(Some(error)),
                        ))
                        .execute(conn)?,
                    "dead",
                    error,
                ),
            };
            if n == 1 {
                written += 1;
                self::event(conn, *id, event, Some(worker), Some(message))?;
            }
        }
        Ok(written)
    })
}

/// Marks `done` jobs still leased to `worker` succeeded; returns how many. The hot
/// path (thousands of jobs a second): a success writes no history row of its own, the
/// job row keeps when (`done_at`) and by whom (`locked_by`), and [`events_of`] shows it
/// in the job's history. A quarter of each job's writes went to that row.
fn succeeded(conn: &mut DbConn, worker: &str, done: &[i64], now: NaiveDateTime) -> QueryResult<usize> {
    if done.is_empty() {
        return Ok(0);
    }
    // One text for any number of jobs, returning rows: prepared once per connection
    // (diesel prepares no `execute`).
    let written: Vec<i64> = crate::with_conn!(conn, |c| crate::db::cached(
        diesel::update(
            jobs::table
                .filter(crate::db::in_any(jobs::id, done.to_vec()))
                .filter(jobs::locked_by.eq(worker))
                .filter(jobs::done_at.is_null()),
        )
        .set((
            jobs::done_at.eq(Some(now)),
            jobs::locked_until.eq(None::<NaiveDateTime>),
            jobs::last_error.eq(None::<String>),
        ))
        .returning(jobs::id)
    )
    .load(c)?);
    Ok(written.len())
}

/// Gives leases back without counting the attempt (graceful shutdown).
pub fn release(conn: &mut DbConn, worker: &str, ids: &[i64]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        jobs::table.filter(jobs::id.eq_any(ids)).filter(jobs::locked_by.eq(worker)).filter(jobs::done_at.is_null()),
    )
    .set((jobs::locked_until.eq(None::<NaiveDateTime>), jobs::attempts.eq(jobs::attempts - 1)))
    .execute(conn)
}

pub fn job(conn: &mut DbConn, id: i64) -> QueryResult<Job> {
    jobs::table.find(id).select(Job::as_select()).first(conn)
}

/// (at, event, worker, message) of a job's history.
pub type JobEvent = (NaiveDateTime, String, Option<String>, Option<String>);

/// A job's history: its events, and its success, which is kept on the job row alone
/// (see [`succeeded`]). A discarded job is done too, but with the reason in
/// `last_error` and an event of its own. Jobs finished before successes left the
/// events table already have their "succeeded" row.
pub fn events_of(conn: &mut DbConn, job: &Job) -> QueryResult<Vec<JobEvent>> {
    let mut events: Vec<JobEvent> = job_events::table
        .filter(job_events::job_id.eq(job.id))
        .order(job_events::id.asc())
        .select((job_events::at, job_events::event, job_events::worker, job_events::message))
        .load(conn)?;
    if let (Some(at), None) = (job.done_at, &job.last_error)
        && !events.iter().any(|e| e.1 == "succeeded")
    {
        events.push((at, "succeeded".into(), job.locked_by.clone(), None));
    }
    Ok(events)
}

/// (kind, done, dead, total) per kind.
pub fn counts(conn: &mut DbConn) -> QueryResult<Vec<(String, i64, i64, i64)>> {
    use diesel::dsl::count;
    jobs::table
        .group_by(jobs::kind)
        .select((jobs::kind, count(jobs::done_at), count(jobs::dead_at), diesel::dsl::count_star()))
        .order(jobs::kind.asc())
        .load(conn)
}

/// Jobs not finished, for the running/queued counts.
pub fn live(conn: &mut DbConn) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::done_at.is_null())
        .filter(jobs::dead_at.is_null())
        .order(jobs::run_at.asc())
        .limit(500)
        .select(Job::as_select())
        .load(conn)
}

pub fn dead(conn: &mut DbConn) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::dead_at.is_not_null())
        .order(jobs::dead_at.desc())
        .limit(200)
        .select(Job::as_select())
        .load(conn)
}

/// Puts a dead job back in the queue with a fresh set of attempts.
pub fn revive(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(jobs::table.filter(jobs::id.eq(id)).filter(jobs::dead_at.is_not_null()))
        .set((
            jobs::dead_at.eq(None::<NaiveDateTime>),
            jobs::attempts.eq(0),
            jobs::run_at.eq(now),
            jobs::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// Discards a dead job: it stays, done, with its history.
pub fn discard(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(jobs::table.filter(jobs::id.eq(id)).filter(jobs::dead_at.is_not_null()))
        .set((
            jobs::dead_at.eq(None::<NaiveDateTime>),
            jobs::done_at.eq(Some(now)),
            jobs::last_error.eq(Some("bỏ qua bởi quản trị viên")),
        ))
        .execute(conn)
}

/// Jobs not yet finished (tests and the bench wait for zero).
pub fn pending(conn: &mut DbConn) -> QueryResult<i64> {
    jobs::table.filter(jobs::done_at.is_null()).filter(jobs::dead_at.is_null()).count().get_result(conn)
}
