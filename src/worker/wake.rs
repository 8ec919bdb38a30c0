//! Waking the worker the moment a job is committed, instead of at its next poll.
//!
//! [`super::enqueue`] notes on its thread that a job is due now; the database helpers
//! ([`crate::services::Services::db`], the jobs' own `db`) look at the note once their
//! closure has returned (committed) and then wake this process's worker and, on
//! PostgreSQL, every other node's (`NOTIFY hubgate_jobs`, delivered at commit, picked
//! up by [`listen`]). The poll stays as the fallback: a lost wake-up costs one poll.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use tokio::sync::Notify;

use crate::db::DbConn;

pub const CHANNEL: &str = "hubgate_jobs";

thread_local! {
    static ENQUEUED: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn note_enqueued() {
    ENQUEUED.with(|c| c.set(true));
}

/// Clears the note (before a closure runs, so an old one is not mistaken for its own).
pub fn clear() {
    ENQUEUED.with(|c| c.set(false));
}

/// PostgreSQL serialises the commits of every transaction that notifies (one lock on the
/// notification queue): under a burst of pushes that lock, not the work, was the limit.
/// One NOTIFY per 50 ms per process is enough to wake the other nodes; this process's
/// own worker is woken in memory every time.
fn notify_due() -> bool {
    use std::sync::atomic::AtomicU64;
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let last = LAST_MS.load(Ordering::Relaxed);
    now.saturating_sub(last) >= 50 && LAST_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// After a closure returned: wakes the local worker and, on PostgreSQL, the others.
pub fn after(conn: &mut DbConn, wake: &Notify) {
    if !ENQUEUED.with(|c| c.replace(false)) {
        return;
    }
    wake.notify_one();
    if let DbConn::Pg(pg) = conn
        && notify_due()
        && let Err(e) = pg.batch_execute(&format!("NOTIFY {CHANNEL}"))
    {
        tracing::debug!(error = %e, "NOTIFY failed; other nodes wait for their poll");
    }
}

/// PostgreSQL only: a thread holding `LISTEN hubgate_jobs` on its own connection that
/// wakes this process's worker on every notification. Reconnects after errors; ends
/// (closing its connection) once `stop` is set.
pub fn listen(database_url: String, wake: Arc<Notify>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("hubgate-listen".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match PgConnection::establish(&database_url) {
                    Ok(mut conn) => {
                        if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")) {
                            tracing::warn!(error = %e, "LISTEN failed");
                        } else {
                            loop {
                                // Reading the socket is cheap; no query runs until a
                                // notification or an error arrives.
                                let mut woke = false;
                                let mut failed = false;
                                for n in conn.notifications_iter() {
                                    match n {
                                        Ok(_) => woke = true,
                                        Err(e) => {
                                            tracing::warn!(error = %e, "LISTEN connection lost");
                                            failed = true;
                                            break;
                                        }
                                    }
                                }
                                if woke {
                                    wake.notify_one();
                                }
                                if failed || stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "LISTEN cannot connect"),
                }
                if !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot start the LISTEN thread"));
}
