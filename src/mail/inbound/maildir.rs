//! Reading mail from files: single .eml files, directories and Maildir folders (CLI),
//! and the watched Maildir whose `new/` messages are ingested and moved to `cur/`.

use std::path::{Path, PathBuf};

use super::batch::Batcher;
use super::service::{self, IngestReport};
use crate::config::MailConfig;
use crate::db::DbConn;
use crate::error::AppResult;

/// Every message file under `path`: the file itself, a directory's files, or a
/// Maildir's `new/` and `cur/`. Sorted, so imports are repeatable.
pub fn message_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let maildir = path.join("new").is_dir() || path.join("cur").is_dir();
    let dirs: Vec<PathBuf> = if maildir { vec![path.join("new"), path.join("cur")] } else { vec![path.to_path_buf()] };
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
            if p.is_file() && !hidden {
                out.push(p);
            } else if p.is_dir() && !maildir && !hidden {
                out.extend(message_files(&p)?);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Ingests the Maildir's `new/` messages in batches and moves each to `cur/` once its
/// batch is stored, so a crash before the move only causes a recognised duplicate,
/// never a loss.
pub fn scan(conn: &mut DbConn, cfg: &MailConfig, maildir: &Path) -> AppResult<Vec<IngestReport>> {
    let new = maildir.join("new");
    let cur = maildir.join("cur");
    if !new.is_dir() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(&cur).map_err(crate::error::AppError::internal)?;
    let mut reports = Vec::new();
    let known = service::Known::load(conn)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
        .map_err(crate::error::AppError::internal)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut pending: Batcher<(PathBuf, String)> = Batcher::new();
    let mut flush = |conn: &mut DbConn, pending: &mut Batcher<(PathBuf, String)>| -> AppResult<()> {
        for ((path, name), report) in pending.ingest(conn, cfg, &known, "maildir")? {
            let target = cur.join(format!("{}:2,S", name.split(':').next().unwrap_or(&name)));
            if let Err(e) = std::fs::rename(&path, &target) {
                tracing::warn!(path = %path.display(), error = %e, "cannot move maildir message to cur/");
            }
            reports.push(report);
        }
        Ok(())
    };
    for path in files {
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read maildir message");
                continue;
            }
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("message").to_string();
        if pending.push((path, name.clone()), raw, Some(name)) {
            flush(conn, &mut pending)?;
        }
    }
    flush(conn, &mut pending)?;
    Ok(reports)
}

/// The job kind the scheduler enqueues to scan the configured Maildir.
pub const SCAN_JOB: &str = "mail.maildir_scan";

/// The Maildir scan job (a scheduled tick; a no-op when no Maildir is configured).
pub async fn scan_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let Some(dir) = ctx.services.config.mail.maildir.clone() else {
        return Ok(());
    };
    let cfg = ctx.services.config.mail.clone();
    let reports = ctx.db(move |conn| scan(conn, &cfg, &dir)).await?;
    if !reports.is_empty() {
        tracing::info!(count = reports.len(), "ingested Maildir messages");
    }
    Ok(())
}
