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
    /// Moves once a database hop that changed a row of `users` has committed: what the
    /// web layer's cache of signed-in users is valid for (see `crate::web::session`).
    pub users_version: Arc<std::sync::atomic::AtomicU64>,
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
            users_version: Default::default(),
        })
    }

    /// Runs `f` with a pooled connection on the blocking thread pool; jobs it enqueued
    /// wake this process's worker once the work is done, and a change to `users` moves
    /// [`Self::users_version`].
    pub async fn db<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    {
        let (pool, wake, users) = (self.pool.clone(), self.wake.clone(), self.users_version.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            crate::worker::wake::clear();
            crate::db::take_users_written();
            let r = f(&mut conn);
            crate::worker::wake::after(&mut conn, &wake);
            users_written_after(&users);
            r
        })
        .await
        .map_err(crate::error::AppError::internal)?
    }
}

/// After a closure returned (its transaction committed or rolled back): moves the
/// version when it changed `users`. Moving it only now, not at the UPDATE, is what keeps
/// a reader that loaded the old row before the commit from caching it as current: such
/// a reader read the version before the move.
pub fn users_written_after(version: &std::sync::atomic::AtomicU64) {
    if crate::db::take_users_written() {
        version.fetch_add(1, std::sync::atomic::Ordering::Release);
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
