//! The worker loop: claim a batch with a lease, run handlers on tokio with a timeout,
//! write the outcomes back in one transaction, stop gracefully.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rand::Rng;
use tokio::task::JoinSet;

use super::models::{self, Job, Outcome};
use super::schedule::{Every, Schedule};
use crate::services::Services;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
pub type Handler = Arc<dyn Fn(JobCtx) -> HandlerFuture + Send + Sync>;

/// What a handler gets: the services (pool, configuration, mailer, HTTP client), the
/// job's payload and which attempt this is.
#[derive(Clone)]
pub struct JobCtx {
    pub services: Services,
    pub id: i64,
    pub payload: serde_json::Value,
    pub attempt: i64,
    pub max_attempts: i64,
}

impl JobCtx {
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Runs database work on the blocking pool, with errors as strings for the job log.
    pub async fn db<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::db::DbConn) -> crate::error::AppResult<T> + Send + 'static,
    {
        let (pool, wake) = (self.services.pool.clone(), self.services.wake.clone());
        let versions = self.services.versions.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            crate::worker::wake::clear();
            crate::db::take_written();
            let r = f(&mut conn).map_err(|e| format!("{e}: {e:?}"));
            crate::worker::wake::after(&mut conn, &wake);
            versions.after_closure();
            r
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Handlers by job kind, and the schedules that enqueue them. Each domain registers its
/// own (see `crate::app::registry`): the worker knows no domain.
#[derive(Clone)]
pub struct Registry {
    handlers: HashMap<String, Handler>,
    schedules: Vec<Schedule>,
}

impl Default for Registry {
    /// The worker's own operational jobs: a no-op (bench, smoke test) and a sleep
    /// (crash test).
    fn default() -> Self {
        let mut r = Registry { handlers: HashMap::new(), schedules: Vec::new() };
        r.register("debug.noop", |_ctx| async { Ok(()) });
        r.register("debug.sleep", |ctx: JobCtx| async move {
            let secs = ctx.payload["secs"].as_f64().unwrap_or(1.0);
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            Ok(())
        });
        r
    }
}

impl Registry {
    pub fn register<F, Fut>(&mut self, kind: &str, f: F)
    where
        F: Fn(JobCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.handlers.insert(kind.to_string(), Arc::new(move |ctx| Box::pin(f(ctx))));
    }

    /// Enqueues a `kind` job with an empty payload at every slot of `every`.
    pub fn every(&mut self, name: &str, every: Every, kind: &str) {
        self.schedules.push(Schedule { name: name.into(), every, kind: kind.into(), payload: serde_json::json!({}) });
    }

    pub fn schedules(&self) -> Vec<Schedule> {
        self.schedules.clone()
    }

    fn get(&self, kind: &str) -> Option<Handler> {
        self.handlers.get(kind).cloned()
    }
}

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub name: String,
    pub concurrency: usize,
    pub lease: Duration,
    pub poll: Duration,
    pub job_timeout: Duration,
    pub grace: Duration,
}

impl WorkerOptions {
    pub fn from_config(c: &crate::config::Config) -> Self {
        WorkerOptions {
            name: node_name(),
            concurrency: c.worker.concurrency,
            lease: c.worker.lease,
            poll: c.worker.poll,
            job_timeout: c.worker.job_timeout,
            grace: c.worker.grace,
        }
    }
}

/// A name for this process among the nodes (host, pid and a random suffix), as job
/// leases and the IMAP reader's lease record it.
pub fn node_name() -> String {
    format!("{}-{}-{:04x}", hostname(), std::process::id(), rand::thread_rng().r#gen::<u16>())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "node".into())
}

/// Exponential backoff with ±25 % jitter, capped at one hour.
pub fn backoff(attempt: i64) -> chrono::Duration {
    let base = 5i64.saturating_mul(1i64 << attempt.clamp(0, 20)).min(3600);
    let jitter = rand::thread_rng().gen_range(0.75..1.25);
    chrono::Duration::milliseconds((base as f64 * 1000.0 * jitter) as i64)
}

async fn blocking<T: Send + 'static>(
    services: &Services,
    f: impl FnOnce(&mut crate::db::DbConn) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, String> {
    let pool = services.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        f(&mut conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn execute(services: Services, registry: Arc<Registry>, job: Job, timeout: Duration) -> (i64, Outcome) {
    let fail = |error: String| {
        if job.attempts >= job.max_attempts {
            Outcome::Dead { error }
        } else {
            Outcome::Retry { at: crate::db::now() + backoff(job.attempts), error }
        }
    };
    let Some(handler) = registry.get(&job.kind) else {
        return (job.id, Outcome::Dead { error: format!("no handler for job kind `{}`", job.kind) });
    };
    let payload = match serde_json::from_str(&job.payload) {
        Ok(p) => p,
        Err(e) => {
            return (job.id, Outcome::Dead { error: format!("payload is not JSON: {e}") });
        }
    };
    let ctx = JobCtx { services, id: job.id, payload, attempt: job.attempts, max_attempts: job.max_attempts };
    let run = std::panic::AssertUnwindSafe(handler(ctx)).catch_unwind();
    let outcome = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(Ok(()))) => Outcome::Done,
        Ok(Ok(Err(e))) => fail(e),
        Ok(Err(_panic)) => fail("handler panicked".into()),
        Err(_) => fail(format!("timed out after {} s", timeout.as_secs())),
    };
    (job.id, outcome)
}

/// Runs until `stop` turns true; then lets running jobs finish within the grace
/// period and releases the leases of those that did not.
pub async fn run(
    services: Services,
    registry: Arc<Registry>,
    opts: WorkerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if opts.concurrency == 0 {
        return;
    }
    tracing::info!(worker = %opts.name, concurrency = opts.concurrency, "worker started");
    let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if services.config.database_url.starts_with("postgres") {
        crate::worker::wake::listen(services.config.database_url.clone(), services.wake.clone(), listening.clone());
    }
    let mut running: JoinSet<(i64, Outcome)> = JoinSet::new();
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut results: Vec<(i64, Outcome)> = Vec::new();
    let mut held = Held::default();
    loop {
        if *stop.borrow() {
            break;
        }
        while let Some(done) = running.try_join_next() {
            if let Ok(r) = done {
                results.push(r);
            }
        }
        let free = opts.concurrency.saturating_sub(running.len());
        let mut claimed_full = false;
        if free > 0 || !results.is_empty() {
            // One trip to the database writes the outcomes and claims the next jobs.
            match exchange(&services, &opts, &mut held, &mut results, &mut in_flight, free).await {
                Ok(jobs) => {
                    claimed_full = free > 0 && jobs.len() == free;
                    for job in jobs {
                        in_flight.insert(job.id);
                        running.spawn(execute(services.clone(), registry.clone(), job, opts.job_timeout));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim jobs; will retry"),
            }
        }
        if claimed_full {
            // More are due: let the jobs just started run, so the next trip writes
            // their outcomes together, then claim again without waiting for a poll.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(r) = done { results.push(r); }
            }
            _ = tokio::time::sleep(opts.poll) => {}
            _ = services.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    // Graceful shutdown: no new claims; running jobs get the grace period.
    let deadline = tokio::time::Instant::now() + opts.grace;
    while !running.is_empty() {
        tokio::select! {
            Some(done) = running.join_next() => { if let Ok(r) = done { results.push(r); } }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // The last outcomes, with nothing claimed.
    if let Err(e) = exchange(&services, &opts, &mut held, &mut results, &mut in_flight, 0).await {
        tracing::error!(error = %e, "cannot record job outcomes");
    }
    running.abort_all();
    let left: Vec<i64> = in_flight.into_iter().collect();
    if !left.is_empty() {
        let name = opts.name.clone();
        let n = blocking(&services, move |c| models::release(c, &name, &left)).await.unwrap_or(0);
        tracing::info!(released = n, "released the leases of unfinished jobs");
    }
    listening.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(worker = %opts.name, "worker stopped");
}

/// The worker's connection, kept from one round to the next: a round is a few
/// milliseconds, and taking a pooled connection each time cost a pool checkout and, on
/// PostgreSQL, r2d2's `SELECT 1` round trip. A round that fails drops it (it may be the
/// connection that broke) and the next takes a fresh one from the pool.
#[derive(Default)]
struct Held(Option<crate::db::PooledConn>);

/// Writes the finished jobs' outcomes and claims up to `free` due jobs, in one blocking
/// hop on the held connection. When all are successes that is one statement (see
/// [`models::finish_and_claim`]), and a failed round gives the outcomes back to be
/// written by the next; otherwise the outcomes commit on their own before the claim.
async fn exchange(
    services: &Services,
    opts: &WorkerOptions,
    held: &mut Held,
    results: &mut Vec<(i64, Outcome)>,
    in_flight: &mut HashSet<i64>,
    free: usize,
) -> Result<Vec<Job>, String> {
    let batch: Vec<(i64, Outcome)> = std::mem::take(results);
    if batch.is_empty() && free == 0 {
        return Ok(Vec::new());
    }
    for (id, _) in &batch {
        in_flight.remove(id);
    }
    let now = crate::db::now();
    let lease_until = now + chrono::Duration::from_std(opts.lease).unwrap_or_else(|_| chrono::Duration::seconds(300));
    let name = opts.name.clone();
    let pool = services.pool.clone();
    let conn = held.0.take();
    let (conn, outcome) = tokio::task::spawn_blocking(move || {
        let mut conn = match conn.map_or_else(|| pool.get(), Ok) {
            Ok(c) => c,
            Err(e) => return (None, Err((e.to_string(), batch))),
        };
        let all_done = batch.iter().all(|(_, o)| matches!(o, Outcome::Done));
        let r = if all_done && free > 0 {
            let done: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            models::finish_and_claim(&mut conn, &name, &done, free as i64, now, lease_until)
                .map_err(|e| (e.to_string(), batch))
        } else {
            if !batch.is_empty()
                && let Err(e) = models::finish(&mut conn, &name, &batch, now)
            {
                // The leases expire and the jobs run again: handlers are idempotent.
                tracing::error!(error = %e, "cannot record job outcomes");
            }
            if free == 0 {
                Ok(Vec::new())
            } else {
                models::claim(&mut conn, &name, free as i64, now, lease_until).map_err(|e| (e.to_string(), Vec::new()))
            }
        };
        (r.is_ok().then_some(conn), r)
    })
    .await
    .map_err(|e| e.to_string())?;
    held.0 = conn;
    outcome.map_err(|(e, unwritten)| {
        // Still running as far as the database knows, as before this round.
        in_flight.extend(unwritten.iter().map(|(id, _)| *id));
        results.extend(unwritten);
        e
    })
}
