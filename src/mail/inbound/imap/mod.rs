//! Partner mail read straight from an IMAP mailbox (Gmail, Microsoft 365, Dovecot…).
//!
//! Each message goes through four steps, in this order:
//! 1. fetched with `BODY.PEEK[]` (nothing is marked read),
//! 2. stored by [`batch::ingest_batch`] with the other messages of its batch (raw
//!    bytes first; committed),
//! 3. the batch's highest UID recorded as the last one stored (under the mailbox's
//!    UIDVALIDITY),
//! 4. moved to the processed folder (UID MOVE, or COPY + \Deleted + EXPUNGE).
//!
//! A crash after 2 fetches the batch again next time and ingest recognises the
//! duplicates; a crash after 3 leaves it in the mailbox at or below the last UID, where
//! the next session moves it without reading it ([`Reader::sweep`]). Nothing is lost and
//! nothing is stored twice; an unreadable message is stored as such and moved like any
//! other, so it is not retried forever.
//!
//! One node at a time reads a mailbox: the reader holds a lease on the mailbox's row
//! (see [`state`]), renewed while it works, and the other nodes wait for it to lapse.
//! With IDLE the reader wakes on new mail and re-IDLEs every 25 minutes (servers end an
//! IDLE after 30); without IDLE it polls. A dropped connection or a restarted server
//! means a new connection after an exponential backoff. Errors are logged and kept on
//! the mailbox's row, never with the password.

pub mod client;
pub mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use client::{Caps, ImapError, ImapSession};

use super::batch::{self, Incoming};
use super::service::{self, IngestReport};
use crate::config::ImapConfig;
use crate::services::Services;

/// How the reader paces itself; [`Options::standard`] in production, shorter in tests.
#[derive(Clone, Debug)]
pub struct Options {
    /// This node's name in the lease.
    pub owner: String,
    /// How long a lease lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// The longest IDLE before it is ended and issued again.
    pub idle_max: Duration,
    /// The longest wait between reconnection attempts.
    pub backoff_max: Duration,
}

impl Options {
    pub fn standard() -> Self {
        Options {
            owner: crate::worker::runner::node_name(),
            lease: Duration::from_secs(90),
            idle_max: Duration::from_secs(25 * 60),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// A refused login is retried at most this often: every try may count towards the
/// provider locking the account.
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

async fn db<T, F>(state: &Services, f: F) -> Result<T, ImapError>
where
    T: Send + 'static,
    F: FnOnce(&mut crate::db::DbConn) -> crate::error::AppResult<T> + Send + 'static,
{
    state.db(f).await.map_err(|e| ImapError::Db(e.to_string()))
}

fn lease_end(lease: Duration) -> chrono::NaiveDateTime {
    crate::db::now() + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(90))
}

/// An open, logged-in connection with the mailbox selected.
struct Reader<'a> {
    state: &'a Services,
    cfg: &'a ImapConfig,
    account: String,
    owner: &'a str,
    session: Option<ImapSession>,
    caps: Caps,
    /// The processed folder as the server spells it.
    folder: String,
    validity: i64,
    last_uid: i64,
    /// The server announced new mail (EXISTS) since the last search.
    announced: bool,
    /// Why the processed folder cannot take mail now (cannot be created, refuses a
    /// move). Mail is still stored, and stays in the mailbox, above no UID read again,
    /// until the folder works and a later pass moves it.
    trouble: Option<ImapError>,
    /// The folder was just tried ([`Reader::sweep`]): the scan right after need not again.
    swept: bool,
}

impl<'a> Reader<'a> {
    async fn open(state: &'a Services, cfg: &'a ImapConfig, owner: &'a str) -> Result<Reader<'a>, ImapError> {
        let (mut session, caps) = client::connect(cfg).await?;
        let folder = client::server_name(&mut session, &cfg.processed_folder).await?;
        let mailbox = client::select(&mut session, &cfg.mailbox).await?;
        let validity = i64::from(mailbox.uid_validity.unwrap_or(0));
        let account = cfg.account();
        let (acc, own) = (account.clone(), owner.to_string());
        let last_uid = db(state, move |c| Ok(state::start_validity(c, &acc, &own, validity, crate::db::now())?))
            .await?
            .ok_or(ImapError::LeaseLost)?;
        Ok(Reader {
            state,
            cfg,
            account,
            owner,
            session: Some(session),
            caps,
            folder,
            validity,
            last_uid,
            announced: false,
            trouble: None,
            swept: false,
        })
    }

    fn session(&mut self) -> Result<&mut ImapSession, ImapError> {
        self.session.as_mut().ok_or(ImapError::Protocol("IDLE", "kết nối đã đóng".into()))
    }

    /// A refused command about the processed folder is kept as trouble (mail is still
    /// read); anything else ends the session.
    fn folder_trouble(&mut self, r: Result<(), ImapError>) -> Result<bool, ImapError> {
        match r {
            Ok(()) => Ok(true),
            Err(e @ ImapError::Refused(..)) => {
                tracing::warn!(folder = %self.folder, error = %e.describe(self.cfg), "cannot use the processed folder");
                self.trouble = Some(e);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the processed folder if needed, then moves what was stored but not moved
    /// (by an earlier session, or this one while the folder failed), without reading it.
    async fn sweep(&mut self) -> Result<(), ImapError> {
        self.trouble = None;
        self.swept = true;
        let folder = self.folder.clone();
        let made = client::ensure_folder(self.session()?, &folder).await;
        if !self.folder_trouble(made)? {
            return Ok(());
        }
        let last = u32::try_from(self.last_uid).unwrap_or(u32::MAX);
        if last == 0 {
            return Ok(());
        }
        let caps = self.caps;
        for uid in client::uids(self.session()?, 1, Some(last)).await? {
            let moved = client::move_to(self.session()?, caps, uid, &folder).await;
            if !self.folder_trouble(moved)? {
                break;
            }
        }
        Ok(())
    }

    /// Reads what the server said on the side (async-imap queues at most 100 such
    /// responses and drops the rest): an EXISTS means new mail.
    fn drain(&mut self) {
        if let Some(s) = self.session.as_mut() {
            while let Ok(r) = s.unsolicited_responses.try_recv() {
                self.announced |= matches!(r, async_imap::types::UnsolicitedResponse::Exists(_));
            }
        }
    }

    /// Stores every message above the last UID, oldest first, each moved once stored;
    /// again while the server announces new mail meanwhile (it announces each message
    /// once: missed here, an IDLE would wait for the next one).
    async fn scan(&mut self) -> Result<Vec<IngestReport>, ImapError> {
        if self.trouble.is_some() && !self.swept {
            self.sweep().await?;
        }
        self.swept = false;
        let mut reports = Vec::new();
        let mut empty_passes = 0;
        loop {
            self.drain();
            self.announced = false;
            let found = self.pass(&mut reports).await?;
            self.drain();
            empty_passes = if found == 0 { empty_passes + 1 } else { 0 };
            // Two empty passes in a row: the server's EXISTS was not about new mail.
            if !self.announced || empty_passes >= 2 {
                break;
            }
        }
        let (acc, trouble) = (self.account.clone(), self.trouble.as_ref().map(|e| e.describe(self.cfg)));
        db(self.state, move |c| {
            match trouble {
                Some(t) => state::note_error(c, &acc, &t, crate::db::now())?,
                None => state::note_ok(c, &acc, crate::db::now())?,
            }
            Ok(())
        })
        .await?;
        Ok(reports)
    }

    /// One search and what it found, in batches; returns how many UIDs it found. A batch
    /// is fetched, stored together ([`batch::ingest_batch`]: two commits per batch), its
    /// highest UID recorded, then each of its messages moved: a crash before the record
    /// fetches the batch again, and each message is recognised as a duplicate.
    async fn pass(&mut self, reports: &mut Vec<IngestReport>) -> Result<usize, ImapError> {
        let from = u32::try_from(self.last_uid + 1).unwrap_or(u32::MAX);
        let uids = client::uids(self.session()?, from, None).await?;
        let mut next = uids.iter().copied().peekable();
        while next.peek().is_some() {
            // The UIDs of this batch, and the messages the server still had.
            let (mut batch_uids, mut stored_uids, mut messages, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), 0);
            while messages.len() < batch::MAX_MESSAGES
                && bytes < batch::MAX_BYTES
                && let Some(uid) = next.next()
            {
                batch_uids.push(uid);
                if let Some(raw) = client::fetch(self.session()?, uid).await? {
                    bytes += raw.len();
                    let file = format!("{};UIDVALIDITY={};UID={uid}", self.cfg.mailbox, self.validity);
                    messages.push(Incoming { raw, file: Some(file) });
                    stored_uids.push(uid);
                }
                self.drain();
            }
            let Some(&last) = batch_uids.last() else { break };
            let (cfg, acc, own, validity) =
                (self.state.config.mail.clone(), self.account.clone(), self.owner.to_string(), self.validity);
            let (stored, still_ours) = db(self.state, move |c| {
                let stored = if messages.is_empty() {
                    Vec::new()
                } else {
                    let known = service::Known::load(c)?;
                    batch::ingest_batch(c, &cfg, &known, "imap", &messages)?
                };
                let ours = state::record_uid(c, &acc, &own, validity, i64::from(last), crate::db::now())?;
                Ok((stored, ours))
            })
            .await?;
            if !still_ours {
                return Err(ImapError::LeaseLost);
            }
            self.last_uid = i64::from(last);
            for (uid, report) in stored_uids.into_iter().zip(stored) {
                tracing::info!(uid, status = %report.status, blob = report.blob_id, "stored a message from IMAP");
                reports.push(report);
                if self.trouble.is_none() {
                    let (caps, folder) = (self.caps, self.folder.clone());
                    let moved = client::move_to(self.session()?, caps, uid, &folder).await;
                    self.folder_trouble(moved)?;
                }
            }
            self.drain();
        }
        Ok(uids.len())
    }

    /// Until the mailbox may have changed: IDLE when the server has it, else the interval.
    async fn wait(&mut self, idle_max: Duration) -> Result<(), ImapError> {
        if !self.caps.idle {
            tokio::time::sleep(self.cfg.interval).await;
            return Ok(());
        }
        let session = self.session.take().ok_or(ImapError::Protocol("IDLE", "kết nối đã đóng".into()))?;
        self.session = Some(client::idle(session, idle_max).await?);
        Ok(())
    }

    async fn close(mut self) {
        if let Some(s) = self.session.as_mut() {
            client::logout(s).await;
        }
    }
}

/// Renews the lease every third of its length; returns once it is lost (taken by
/// another node, or not renewable before it ran out).
async fn keep_lease(state: &Services, account: &str, owner: &str, lease: Duration) -> ImapError {
    let mut valid_until = tokio::time::Instant::now() + lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        let (acc, own, until) = (account.to_string(), owner.to_string(), lease_end(lease));
        match db(state, move |c| Ok(state::renew(c, &acc, &own, until)?)).await {
            Ok(true) => valid_until = tokio::time::Instant::now() + lease,
            Ok(false) => return ImapError::LeaseLost,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the IMAP lease; will retry");
                if tokio::time::Instant::now() + lease / 3 >= valid_until {
                    return ImapError::LeaseLost;
                }
            }
        }
    }
}

/// Runs `work` while keeping the lease; the lease's loss ends it.
async fn with_lease<T>(
    state: &Services,
    account: &str,
    owner: &str,
    lease: Duration,
    work: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::select! {
        r = work => r,
        e = keep_lease(state, account, owner, lease) => Err(e),
    }
}

/// Takes the lease, or says who holds it.
async fn take_lease(state: &Services, account: &str, owner: &str, lease: Duration) -> Result<(), ImapError> {
    let (acc, own, until) = (account.to_string(), owner.to_string(), lease_end(lease));
    let taken = db(state, move |c| {
        if state::acquire(c, &acc, &own, crate::db::now(), until)? {
            return Ok(None);
        }
        Ok(Some(state::get(c, &acc)?))
    })
    .await?;
    match taken {
        None => Ok(()),
        Some(row) => Err(ImapError::Busy {
            owner: row.as_ref().and_then(|r| r.lease_owner.clone()).unwrap_or_default(),
            until: row.and_then(|r| r.lease_until).map(|t| crate::fmt::LocalTime(t).to_string()).unwrap_or_default(),
        }),
    }
}

async fn give_back(state: &Services, account: &str, owner: &str) {
    let (acc, own) = (account.to_string(), owner.to_string());
    if let Err(e) = db(state, move |c| Ok(state::release(c, &acc, &own)?)).await {
        tracing::warn!(error = %e, "cannot release the IMAP lease; it lapses by itself");
    }
}

async fn note_error(state: &Services, cfg: &ImapConfig, e: &ImapError) {
    let (acc, text) = (cfg.account(), e.describe(cfg));
    tracing::warn!(mailbox = %acc, error = %text, "IMAP mailbox");
    if let Err(e) = db(state, move |c| Ok(state::note_error(c, &acc, &text, crate::db::now())?)).await {
        tracing::warn!(error = %e, "cannot record the IMAP error");
    }
}

/// One connection's life: sweep, then scan and wait for ever; returns its error.
/// `worked` turns true once a scan went through (the backoff starts again).
async fn session(state: &Services, cfg: &ImapConfig, opts: &Options, worked: &AtomicBool) -> ImapError {
    let mut reader = match Reader::open(state, cfg, &opts.owner).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = reader.sweep().await {
        return e;
    }
    loop {
        match reader.scan().await {
            Ok(reports) if !reports.is_empty() => tracing::info!(count = reports.len(), "ingested IMAP messages"),
            Ok(_) => {}
            Err(e) => return e,
        }
        worked.store(true, Ordering::Relaxed);
        if let Err(e) = reader.wait(opts.idle_max).await {
            return e;
        }
    }
}

/// Waits `d`, or less when `stop` turns true; returns whether to stop.
async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}

/// The reader of the configured mailbox, until `stop` turns true (the embedded worker
/// and `hubgate worker` run it; a no-op without `imap_host`).
pub async fn run(state: Services, opts: Options, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(cfg) = state.config.mail.imap.clone() else {
        return;
    };
    let account = cfg.account();
    tracing::info!(mailbox = %account, owner = %opts.owner, "reading partner mail over IMAP");
    let mut failures: u32 = 0;
    loop {
        match take_lease(&state, &account, &opts.owner, opts.lease).await {
            Ok(()) => {}
            Err(ImapError::Busy { .. }) => {
                if pause(&mut stop, opts.lease / 3).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the IMAP lease; will retry");
                if pause(&mut stop, opts.backoff_max).await {
                    break;
                }
                continue;
            }
        }
        let worked = AtomicBool::new(false);
        let error = tokio::select! {
            e = with_lease(&state, &account, &opts.owner, opts.lease, async {
                Err::<(), _>(session(&state, &cfg, &opts, &worked).await)
            }) => e.err(),
            _ = stop.changed() => None,
        };
        let Some(error) = error else {
            break;
        };
        if worked.load(Ordering::Relaxed) {
            failures = 0;
        }
        if matches!(error, ImapError::LeaseLost) {
            tracing::info!(mailbox = %account, "another node reads the IMAP mailbox now");
            continue;
        }
        note_error(&state, &cfg, &error).await;
        failures = failures.saturating_add(1);
        let cap = if error.is_login() { LOGIN_BACKOFF_MAX } else { opts.backoff_max };
        let wait = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(cap);
        if pause(&mut stop, wait).await {
            break;
        }
    }
    give_back(&state, &account, &opts.owner).await;
    tracing::info!(mailbox = %account, "IMAP reader stopped");
}

/// What one read of the mailbox did.
#[derive(Debug)]
pub struct Fetched {
    /// Each message stored (or recognised as already stored).
    pub reports: Vec<IngestReport>,
    /// Why stored mail could not be moved to the processed folder (it stays in the
    /// mailbox, and is moved without being read again once the folder works).
    pub not_moved: Option<String>,
}

/// One read of the mailbox (the CLI's `mail imap-fetch`).
pub async fn fetch_once(state: &Services, opts: &Options) -> Result<Fetched, ImapError> {
    let cfg =
        state.config.mail.imap.as_ref().ok_or_else(|| ImapError::Protocol("-", "chưa cấu hình imap_host".into()))?;
    let account = cfg.account();
    take_lease(state, &account, &opts.owner, opts.lease).await?;
    let result = with_lease(state, &account, &opts.owner, opts.lease, async {
        let mut reader = Reader::open(state, cfg, &opts.owner).await?;
        reader.sweep().await?;
        let reports = reader.scan().await?;
        let not_moved = reader.trouble.as_ref().map(|e| e.describe(cfg));
        reader.close().await;
        Ok(Fetched { reports, not_moved })
    })
    .await;
    if let Err(e) = &result {
        note_error(state, cfg, e).await;
    }
    give_back(state, &account, &opts.owner).await;
    result
}

/// What `mail imap-check` found, changing nothing.
#[derive(Debug)]
pub struct Check {
    pub caps: Caps,
    pub messages: u32,
    pub uid_validity: Option<u32>,
    pub uid_next: Option<u32>,
    pub processed_folder_exists: bool,
    pub state: Option<state::MailboxState>,
}

/// Connects, logs in and opens the mailbox read-only.
pub async fn check(state: &Services) -> Result<Check, ImapError> {
    let cfg =
        state.config.mail.imap.as_ref().ok_or_else(|| ImapError::Protocol("-", "chưa cấu hình imap_host".into()))?;
    let (mut session, caps) = client::connect(cfg).await?;
    let mailbox = client::examine(&mut session, &cfg.mailbox).await?;
    let folder = client::server_name(&mut session, &cfg.processed_folder).await?;
    let processed_folder_exists = client::folder_exists(&mut session, &folder).await?;
    client::logout(&mut session).await;
    let account = cfg.account();
    let row = db(state, move |c| Ok(state::get(c, &account)?)).await?;
    Ok(Check {
        caps,
        messages: mailbox.exists,
        uid_validity: mailbox.uid_validity,
        uid_next: mailbox.uid_next,
        processed_folder_exists,
        state: row,
    })
}
