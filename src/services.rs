//! What domain services and background jobs run with: the configuration, the database
//! pool, the SMTP transport and one HTTP client for outside parties.
//!
//! It sits on the ground floor (with `config`, `db` and `error`) so that the arrows run
//! one way: the web layer's `AppState` wraps it, the worker hands it to each job, and
//! neither a domain service nor the worker needs to import the web layer.

use std::sync::Arc;

use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::Config;
use crate::db::{DbConn, Pool};
use crate::error::AppResult;

#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub mailer: Arc<Mailer>,
    /// One HTTP client for every outside party (banks, agents); no redirects followed.
    pub http: reqwest::Client,
    /// Wakes this process's worker when a committed change enqueued a job.
    pub wake: Arc<tokio::sync::Notify>,
    /// What this process's caches of rows are valid for.
    pub versions: Arc<Versions>,
}

impl Services {
    pub fn new(config: Config, pool: Pool) -> anyhow::Result<Self> {
        let mailer = Arc::new(Mailer::from_config(&config.outbound)?);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("hubgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            config: Arc::new(config),
            pool,
            mailer,
            http,
            wake: Arc::new(tokio::sync::Notify::new()),
            versions: Default::default(),
        })
    }

    /// Runs `f` with a pooled connection on the blocking thread pool; jobs it enqueued
    /// wake this process's worker once the work is done, and a change to cached rows
    /// moves their [`Self::versions`].
    pub async fn db<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    {
        let (pool, wake, versions) = (self.pool.clone(), self.wake.clone(), self.versions.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            crate::worker::wake::clear();
            crate::db::take_written();
            let r = f(&mut conn);
            crate::worker::wake::after(&mut conn, &wake);
            versions.after_closure();
            r
        })
        .await
        .map_err(crate::error::AppError::internal)?
    }
}

/// Counters that move once a database hop that changed some rows has committed. A cache
/// keeps the counter's value from before its read beside the rows, and holds them only
/// while the counter has not moved (and for a short time: another process's change
/// moves nothing here).
#[derive(Default, Debug)]
pub struct Versions {
    /// `users`: the web layer's cache of signed-in users (see `crate::web::session`).
    pub users: std::sync::atomic::AtomicU64,
    /// The desk's reference tables (see [`RowCache`]).
    pub reference: std::sync::atomic::AtomicU64,
}

impl Versions {
    /// After a closure returned (its transaction committed or rolled back): moves the
    /// counter of each kind of row it changed. Moving it only now, not at the UPDATE, is
    /// what keeps a reader that loaded the old rows before the commit from caching them
    /// as current: such a reader read the counter before the move.
    pub fn after_closure(&self) {
        use std::sync::atomic::Ordering::Release;
        let written = crate::db::take_written();
        if written.users {
            self.users.fetch_add(1, Release);
        }
        if written.reference {
            self.reference.fetch_add(1, Release);
        }
    }
}

/// Rows every page reads and that almost never change, as this process last read them:
/// held while their [`Versions`] counter stays, and for at most `ttl` (what another
/// process's change waits at most to show here).
pub struct RowCache<T> {
    versions: Arc<Versions>,
    counter: fn(&Versions) -> &std::sync::atomic::AtomicU64,
    ttl: std::time::Duration,
    load: fn(&mut DbConn) -> diesel::QueryResult<T>,
    slot: std::sync::Mutex<Option<(u64, std::time::Instant, Arc<T>)>>,
}

impl<T> RowCache<T> {
    pub fn new(
        versions: Arc<Versions>,
        counter: fn(&Versions) -> &std::sync::atomic::AtomicU64,
        ttl: std::time::Duration,
        load: fn(&mut DbConn) -> diesel::QueryResult<T>,
    ) -> Self {
        Self { versions, counter, ttl, load, slot: std::sync::Mutex::new(None) }
    }

    /// The rows: those held, or read anew on `conn` when none are held or they are stale.
    pub fn get(&self, conn: &mut DbConn) -> diesel::QueryResult<Arc<T>> {
        // Read before the rows (see `Versions::after_closure`).
        let version = (self.counter)(&self.versions).load(std::sync::atomic::Ordering::Acquire);
        let now = std::time::Instant::now();
        {
            let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((v, at, rows)) = slot.as_ref()
                && *v == version
                && now.saturating_duration_since(*at) < self.ttl
            {
                return Ok(rows.clone());
            }
        }
        let rows = Arc::new((self.load)(conn)?);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, now, rows.clone()));
        Ok(rows)
    }
}

/// The configured transport: SMTP (pooled) or .eml files.
pub enum Mailer {
    /// The pool is built on first use: building it spawns its reaper task, which
    /// needs the runtime that the CLI only starts after the state is made.
    Smtp {
        builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
        pool: std::sync::OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    },
    File(AsyncFileTransport<Tokio1Executor>),
}

impl Mailer {
    pub fn from_config(cfg: &crate::config::OutboundConfig) -> anyhow::Result<Self> {
        match &cfg.smtp_url {
            // Parsed now so a typo stops the start, not the first mail.
            Some(url) => Ok(Mailer::Smtp {
                builder: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("HUBGATE_SMTP_URL: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(30))),
                pool: std::sync::OnceLock::new(),
            }),
            None => {
                std::fs::create_dir_all(&cfg.outbox_dir)?;
                Ok(Mailer::File(AsyncFileTransport::<Tokio1Executor>::new(&cfg.outbox_dir)))
            }
        }
    }

    pub async fn send_raw(&self, envelope: &lettre::address::Envelope, raw: &[u8]) -> Result<(), String> {
        match self {
            Mailer::Smtp { builder, pool } => {
                let transport = pool.get_or_init(|| builder.clone().build());
                transport.send_raw(envelope, raw).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Mailer::File(t) => t.send_raw(envelope, raw).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }
}
