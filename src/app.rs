//! The composition root: which domain's jobs and schedules the worker runs, and what
//! starts beside the web server. Only this module (with the CLI and the web routes)
//! names every domain, so the arrows elsewhere run one way: web → domains → worker, db.

use crate::config::Config;
use crate::services::Services;
use crate::worker::runner::{self, Registry, WorkerOptions};

/// The schema's pending migrations, then the data steps the domains need after them.
pub fn migrate(conn: &mut crate::db::DbConn) -> anyhow::Result<Vec<String>> {
    let applied = crate::db::migrate(conn)?;
    // Reference data that ships with the binary: the bank list, loaded once.
    crate::banking::catalogue::ensure_loaded(conn).map_err(|e| anyhow::anyhow!("bank list: {e}"))?;
    // Mail stored before the inbox search column: folded once, here (SQL cannot fold).
    crate::mail::inbound::models::backfill_search_text(conn).map_err(|e| anyhow::anyhow!("mail search: {e}"))?;
    Ok(applied)
}

/// Every domain's jobs and schedules, as configured.
pub fn registry(config: &Config) -> Registry {
    let mut r = Registry::default();
    crate::mail::register_jobs(&mut r, config);
    crate::reports::register_jobs(&mut r);
    crate::accounts::register_jobs(&mut r);
    crate::hub::register_jobs(&mut r);
    crate::banking::register_jobs(&mut r);
    crate::notify::register_jobs(&mut r);
    // Double-submit tokens older than a day, every hour.
    r.register(crate::web::once::PRUNE_JOB, crate::web::once::prune_job);
    r.every("prune-form-submissions", crate::worker::schedule::Every::Seconds(3600), crate::web::once::PRUNE_JOB);
    r
}

/// Starts the embedded worker (unless its concurrency is 0), the scheduler and the IMAP
/// reader (when configured) on the current runtime; all stop when `stop` turns true.
pub fn start_background(
    services: &Services,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let registry = registry(&services.config);
    let schedules = registry.schedules();
    let opts = WorkerOptions::from_config(&services.config);
    // The IMAP reader goes with the worker: a node without one (concurrency 0) reads no mail.
    let imap = (opts.concurrency > 0 && services.config.mail.imap.is_some()).then(|| {
        let opts = crate::mail::inbound::imap::Options {
            owner: opts.name.clone(),
            ..crate::mail::inbound::imap::Options::standard()
        };
        tokio::spawn(crate::mail::inbound::imap::run(services.clone(), opts, stop.clone()))
    });
    let mut tasks = vec![
        tokio::spawn(runner::run(services.clone(), std::sync::Arc::new(registry), opts, stop.clone())),
        tokio::spawn(crate::worker::schedule::run(services.pool.clone(), schedules, stop)),
    ];
    tasks.extend(imap);
    tasks
}
