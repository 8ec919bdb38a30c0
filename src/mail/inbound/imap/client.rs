//! One IMAP connection: TCP, then TLS (implicit or after STARTTLS) trusting the
//! system's roots and the optional CA file, the login, and the few commands the reader
//! needs, each bounded by a timeout so a silent server cannot hang the reader.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::config::{ImapConfig, ImapTls};

/// The byte stream under the IMAP client, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

pub type ImapSession = Session<Box<dyn Io>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A command's answer; generous, since fetching a 25 MB message over a slow link is one.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// What can go wrong with the mailbox, worded for the person who configured it.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("Không kết nối được tới máy chủ IMAP {0}: {1}")]
    Connect(String, String),
    #[error("Kết nối TLS tới máy chủ IMAP {0} không thành công: {1}")]
    Tls(String, String),
    #[error(
        "Máy chủ IMAP từ chối đăng nhập của {user}: sai tên đăng nhập hoặc mật khẩu (Gmail và Microsoft 365 cần \
         mật khẩu ứng dụng). Máy chủ trả lời: {reply}"
    )]
    Login { user: String, reply: String },
    #[error("Không mở được thư mục IMAP «{0}»: {1}")]
    Mailbox(String, String),
    #[error("Máy chủ IMAP không trả lời lệnh {0} sau {1} giây")]
    Timeout(&'static str, u64),
    #[error("Lỗi IMAP ở lệnh {0}: {1}")]
    Protocol(&'static str, String),
    #[error("Máy chủ IMAP từ chối lệnh {0}: {1}")]
    Refused(&'static str, String),
    #[error("Hộp thư đang do {owner} đọc (giữ đến {until}); thử lại sau.")]
    Busy { owner: String, until: String },
    #[error("Một nút khác đã nhận đọc hộp thư này.")]
    LeaseLost,
    #[error("Lỗi cơ sở dữ liệu khi đọc thư IMAP: {0}")]
    Db(String),
}

impl ImapError {
    /// The message with the password blotted out, should a server ever echo it back.
    pub fn describe(&self, cfg: &ImapConfig) -> String {
        let text = self.to_string();
        if cfg.password.chars().count() >= 4 { text.replace(&cfg.password, "…") } else { text }
    }

    /// A refused login: retried slowly, since each try may count towards locking the account.
    pub fn is_login(&self) -> bool {
        matches!(self, ImapError::Login { .. })
    }
}

/// The server's own words out of async-imap's `code: …, info: Some("…")`.
fn server_text(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    match e {
        Error::No(s) | Error::Bad(s) => s
            .split_once("info: Some(\"")
            .and_then(|(_, rest)| rest.rsplit_once("\")"))
            .map(|(info, _)| info.to_string())
            .unwrap_or_else(|| s.clone()),
        other => other.to_string(),
    }
}

async fn within<T>(
    what: &'static str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| match e {
            // A NO: the server said no to this command; the connection is fine.
            async_imap::error::Error::No(_) => ImapError::Refused(what, server_text(&e)),
            e => ImapError::Protocol(what, server_text(&e)),
        }),
        Err(_) => Err(ImapError::Timeout(what, COMMAND_TIMEOUT.as_secs())),
    }
}

fn tls_config(cfg: &ImapConfig) -> Result<rustls::ClientConfig, ImapError> {
    let tls_err = |e: String| ImapError::Tls(format!("{}:{}", cfg.host, cfg.port), e);
    let mut roots = rustls::RootCertStore::empty();
    // The system's store (as a mail client would); unreadable entries are skipped.
    let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut extra = 0;
    if let Some(path) = &cfg.ca_file {
        for cert in crate::config::read_ca_file(path).map_err(tls_err)? {
            roots.add(cert).map_err(|e| tls_err(e.to_string()))?;
            extra += 1;
        }
    }
    if added + extra == 0 {
        return Err(tls_err("không có chứng chỉ gốc nào để tin (cài ca-certificates hoặc đặt imap_ca_file)".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn start_tls(cfg: &ImapConfig, stream: Box<dyn Io>) -> Result<Box<dyn Io>, ImapError> {
    let where_ = format!("{}:{}", cfg.host, cfg.port);
    let name = ServerName::try_from(cfg.host.clone()).map_err(|e| ImapError::Tls(where_.clone(), e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(cfg)?));
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(Box::new(tls)),
        Ok(Err(e)) => {
            let mut why = e.to_string();
            if why.contains("certificate") {
                why.push_str(" (chứng chỉ tự ký hoặc của CA nội bộ: đặt imap_ca_file)");
            }
            Err(ImapError::Tls(where_, why))
        }
        Err(_) => Err(ImapError::Timeout("TLS", CONNECT_TIMEOUT.as_secs())),
    }
}

/// What the server offers that the reader cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub idle: bool,
    pub moves: bool,
    pub uidplus: bool,
}

/// Connects, secures and logs in.
pub async fn connect(cfg: &ImapConfig) -> Result<(ImapSession, Caps), ImapError> {
    let where_ = format!("{}:{}", cfg.host, cfg.port);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((cfg.host.as_str(), cfg.port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ImapError::Connect(where_, e.to_string())),
        Err(_) => return Err(ImapError::Timeout("CONNECT", CONNECT_TIMEOUT.as_secs())),
    };
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match cfg.tls {
        ImapTls::Tls => start_tls(cfg, Box::new(tcp)).await?,
        ImapTls::StartTls | ImapTls::Plain => Box::new(tcp),
    };
    let mut client = Client::new(stream);
    greeting(&mut client, &where_).await?;
    if cfg.tls == ImapTls::StartTls {
        within("STARTTLS", client.run_command_and_check_ok("STARTTLS", None)).await?;
        // Whatever the server sent after its answer is dropped with the plain client,
        // as STARTTLS requires (no command injection before the handshake).
        let plain = client.into_inner();
        client = Client::new(start_tls(cfg, plain).await?);
    }
    let login = tokio::time::timeout(COMMAND_TIMEOUT, client.login(&cfg.user, &cfg.password)).await;
    let mut session = match login {
        Ok(Ok(s)) => s,
        Ok(Err((e @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)), _))) => {
            return Err(ImapError::Login { user: cfg.user.clone(), reply: server_text(&e) });
        }
        Ok(Err((e, _))) => return Err(ImapError::Protocol("LOGIN", server_text(&e))),
        Err(_) => return Err(ImapError::Timeout("LOGIN", COMMAND_TIMEOUT.as_secs())),
    };
    let caps = within("CAPABILITY", session.capabilities()).await?;
    let caps = Caps { idle: caps.has_str("IDLE"), moves: caps.has_str("MOVE"), uidplus: caps.has_str("UIDPLUS") };
    Ok((session, caps))
}

async fn greeting(client: &mut Client<Box<dyn Io>>, where_: &str) -> Result<(), ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(r))) => {
            use async_imap::imap_proto::{Response, Status};
            match r.parsed() {
                Response::Data { status: Status::Bye, outcome, .. } => Err(ImapError::Connect(
                    where_.to_string(),
                    format!("máy chủ từ chối kết nối: {}", outcome.information.as_deref().unwrap_or("")),
                )),
                _ => Ok(()),
            }
        }
        Ok(Ok(None)) => Err(ImapError::Connect(where_.to_string(), "máy chủ đóng kết nối ngay".into())),
        Ok(Err(e)) => Err(ImapError::Connect(where_.to_string(), e.to_string())),
        Err(_) => Err(ImapError::Timeout("greeting", COMMAND_TIMEOUT.as_secs())),
    }
}

/// A mailbox name as a quoted IMAP string (names were checked at configuration: no `"`
/// or `\`).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// A folder name as the server spells it: its hierarchy separator instead of `/`.
pub async fn server_name(session: &mut ImapSession, folder: &str) -> Result<String, ImapError> {
    let names: Vec<_> =
        within("LIST", async { session.list(Some(""), Some("\"\"")).await?.try_collect().await }).await?;
    Ok(match names.first().and_then(|n| n.delimiter()) {
        Some(d) if d != "/" && !d.is_empty() => folder.replace('/', d),
        _ => folder.to_string(),
    })
}

/// Whether a folder exists (`folder` as the server spells it).
pub async fn folder_exists(session: &mut ImapSession, folder: &str) -> Result<bool, ImapError> {
    let names: Vec<_> =
        within("LIST", async { session.list(Some(""), Some(&quoted(folder))).await?.try_collect().await }).await?;
    Ok(!names.is_empty())
}

/// Creates (and subscribes) the folder when missing; `folder` as the server spells it.
pub async fn ensure_folder(session: &mut ImapSession, folder: &str) -> Result<(), ImapError> {
    if !folder_exists(session, folder).await? {
        within("CREATE", session.create(folder)).await?;
        // So that the folder shows in people's mail programs.
        let _ = within("SUBSCRIBE", session.subscribe(folder)).await;
        tracing::info!(folder, "created the IMAP folder for processed mail");
    }
    Ok(())
}

pub async fn select(session: &mut ImapSession, mailbox: &str) -> Result<async_imap::types::Mailbox, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, session.select(mailbox)).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(ImapError::Mailbox(mailbox.to_string(), server_text(&e))),
        Err(_) => Err(ImapError::Timeout("SELECT", COMMAND_TIMEOUT.as_secs())),
    }
}

/// Read-only open (the CLI check).
pub async fn examine(session: &mut ImapSession, mailbox: &str) -> Result<async_imap::types::Mailbox, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, session.examine(mailbox)).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(ImapError::Mailbox(mailbox.to_string(), server_text(&e))),
        Err(_) => Err(ImapError::Timeout("EXAMINE", COMMAND_TIMEOUT.as_secs())),
    }
}

/// UIDs in `from..=to` (`to` None = up to the newest), ascending. Filtered by hand:
/// `UID n:*` names the newest message even when its UID is below n.
pub async fn uids(session: &mut ImapSession, from: u32, to: Option<u32>) -> Result<Vec<u32>, ImapError> {
    let set = match to {
        Some(to) => format!("UID {from}:{to}"),
        None => format!("UID {from}:*"),
    };
    let found: HashSet<u32> = within("UID SEARCH", session.uid_search(&set)).await?;
    let mut uids: Vec<u32> = found.into_iter().filter(|u| *u >= from && to.is_none_or(|t| *u <= t)).collect();
    uids.sort_unstable();
    Ok(uids)
}

/// The raw message, unread flag left alone; None when it is gone (expunged meanwhile).
pub async fn fetch(session: &mut ImapSession, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
    let fetches: Vec<_> = within("UID FETCH", async {
        session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])").await?.try_collect().await
    })
    .await?;
    Ok(fetches.iter().find(|f| f.uid == Some(uid)).map(|f| f.body().unwrap_or_default().to_vec()))
}

/// Moves one message to `folder`: UID MOVE, or COPY, \Deleted and an expunge of just
/// that UID (UIDPLUS); a plain EXPUNGE as the last resort also removes what someone
/// else had marked deleted in the mailbox, as any mail program's expunge would.
pub async fn move_to(session: &mut ImapSession, caps: Caps, uid: u32, folder: &str) -> Result<(), ImapError> {
    let set = uid.to_string();
    if caps.moves {
        return within("UID MOVE", session.uid_mv(&set, folder)).await;
    }
    within("UID COPY", session.uid_copy(&set, folder)).await?;
    let _: Vec<_> =
        within("UID STORE", async { session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await })
            .await?;
    if caps.uidplus {
        let _: Vec<_> = within("UID EXPUNGE", async { session.uid_expunge(&set).await?.try_collect().await }).await?;
    } else {
        let _: Vec<_> = within("EXPUNGE", async { session.expunge().await?.try_collect().await }).await?;
    }
    Ok(())
}

/// Waits in IDLE until the mailbox changes or `max` passes (servers drop an IDLE after
/// 30 minutes, and keepalives would stop async-imap's own timer from ever firing).
pub async fn idle(session: ImapSession, max: Duration) -> Result<ImapSession, ImapError> {
    let mut handle = session.idle();
    within("IDLE", handle.init()).await?;
    {
        let (wait, _interrupt) = handle.wait_with_timeout(max);
        if let Ok(r) = tokio::time::timeout(max, wait).await {
            r.map_err(|e| ImapError::Protocol("IDLE", server_text(&e)))?;
        }
    }
    within("DONE", handle.done()).await
}

pub async fn logout(session: &mut ImapSession) {
    let _ = tokio::time::timeout(Duration::from_secs(10), session.logout()).await;
}
