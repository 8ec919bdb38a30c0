//! Partner mail from an IMAP mailbox, against a real Dovecot (Debian's dovecot-imapd)
//! that each test starts on unprivileged ports of 127.0.0.1, with a throw-away
//! configuration, a passwd-file user, a Maildir and a self-signed certificate made by
//! openssl, all in a temp dir.
//!
//! Without Dovecot the tests say so and pass, except under `CI`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use diesel::prelude::*;
use futures_util::TryStreamExt;
use hubgate::config::{ImapConfig, ImapTls};
use hubgate::db::Backend;
use hubgate::db::schema::{mail_blobs, mail_messages};
use hubgate::mail::inbound::imap::{self, client, state};

use crate::support::{KillOnDrop, NotUp, TestApp, poll};

const USER: &str = "doitac@hub.test";
const PASSWORD: &str = "Mk-imap-2026-bi-mat";
const DOVECOT: &str = "/usr/sbin/dovecot";

/// A Dovecot of our own: `plain_port` speaks plain IMAP (and STARTTLS), `tls_port`
/// implicit TLS; its greeting is `token`, which no other server says. Stopped (SIGTERM,
/// then waited for) when dropped.
struct Dovecot {
    dir: tempfile::TempDir,
    conf: PathBuf,
    plain_port: u16,
    tls_port: u16,
    token: String,
    proc: Option<KillOnDrop>,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Dovecot {
    /// None (with a note) when Dovecot is not installed; under CI that is a failure.
    /// `extra` is appended to the configuration (e.g. a reduced capability list).
    fn start(extra: &str) -> Option<Dovecot> {
        if !Path::new(DOVECOT).exists() {
            crate::support::skipped(&format!("{DOVECOT} is missing (apt-get install dovecot-imapd)"));
            return None;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path();
        // Dovecot's processes run under other users and must reach their files.
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let me = std::fs::metadata(p).map(|m| (m.uid(), m.gid())).unwrap_or((0, 0));
        let mail = p.join("mail");
        std::fs::create_dir_all(&mail).unwrap_or_else(|e| panic!("{e}"));
        // As root, Dovecot refuses to run mail processes as root: they run as nobody.
        let (uid, gid, users) = if me.0 == 0 {
            std::os::unix::fs::chown(&mail, Some(65534), Some(65534)).unwrap_or_else(|e| panic!("{e}"));
            (65534, 65534, String::new())
        } else {
            let name = String::from_utf8_lossy(
                &Command::new("id").arg("-un").output().unwrap_or_else(|e| panic!("id: {e}")).stdout,
            )
            .trim()
            .to_string();
            let group = String::from_utf8_lossy(
                &Command::new("id").arg("-gn").output().unwrap_or_else(|e| panic!("id: {e}")).stdout,
            )
            .trim()
            .to_string();
            (
                me.0,
                me.1,
                format!(
                    "default_internal_user = {name}\ndefault_internal_group = {group}\ndefault_login_user = {name}\n"
                ),
            )
        };
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(p.join("key.pem"))
            .arg("-out")
            .arg(p.join("cert.pem"))
            .stderr(Stdio::piped()));
        std::fs::write(p.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let d = p.display().to_string();
        let conf_path = p.join("dovecot.conf");
        let log_path = p.join("dovecot.log");
        let conf = |plain_port: u16, tls_port: u16, token: &str| {
            format!(
                r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
{users}first_valid_uid = 1
login_log_format_elements = user=<%u> method=%m rip=%r lport=%{{local_port}} %c
login_greeting = {token}
mail_location = maildir:{d}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"#
            )
        };
        let mut server = Dovecot { dir, conf: conf_path, plain_port: 0, tls_port: 0, token: String::new(), proc: None };
        // Dovecot binds its ports itself (no socket can be handed to it): when another
        // process took one first, it exits saying so and starts again on others.
        crate::support::start_on_free_ports("dovecot", 2, |ports| {
            (server.plain_port, server.tls_port) = (ports[0], ports[1]);
            server.token = crate::support::instance_token();
            let text = conf(server.plain_port, server.tls_port, &server.token);
            std::fs::write(&server.conf, text).unwrap_or_else(|e| panic!("{e}"));
            // A fresh log per try: an earlier try's "Address already in use" says nothing now.
            let _ = std::fs::remove_file(&log_path);
            server.launch()
        });
        Some(server)
    }

    /// Starts it on its ports; up once its greeting (our token) comes on the plain
    /// port and the TLS port takes connections: the master binds both before it starts
    /// the login process that greets.
    fn launch(&mut self) -> Result<(), NotUp> {
        use std::os::unix::process::CommandExt;
        let stderr_path = self.dir.path().join("dovecot-stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("{e}"));
        let mut child = KillOnDrop(
            Command::new(DOVECOT)
                // Its own process group, so that stopping it ends every process it started.
                .process_group(0)
                .arg("-F")
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("dovecot: {e}")),
        );
        let up = crate::support::wait_for_own_server(
            &mut child.0,
            || {
                crate::support::answers_with(self.plain_port, b"", &self.token)
                    && std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok()
            },
            || format!("{}{}", std::fs::read_to_string(&stderr_path).unwrap_or_default(), self.log()),
        );
        self.proc = Some(child);
        if up.is_err() {
            // Whatever it left running goes too.
            self.stop();
        }
        up
    }

    /// Stops the server as a service manager would: SIGTERM to all its processes (the
    /// master alone leaves the connections it handed out running), then waits until
    /// none is left, so its ports are free again.
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let group = p.0.id();
            let _ = Command::new("sh").args(["-c", &format!("kill -TERM -{group}")]).status();
            let _ = p.0.wait();
            let started = std::time::Instant::now();
            while Command::new("sh")
                .args(["-c", &format!("kill -0 -{group} 2>/dev/null")])
                .status()
                .is_ok_and(|s| s.success())
            {
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = Command::new("sh").args(["-c", &format!("kill -KILL -{group}")]).status();
                }
                assert!(started.elapsed() < Duration::from_secs(30), "dovecot's processes did not exit");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Logins on the implicit-TLS port: the reader's (the tests' own clients use the other).
    fn reader_logins(&self) -> usize {
        let port = format!("lport={}", self.tls_port);
        self.log().lines().filter(|l| l.contains("Login: ") && l.contains(&port)).count()
    }

    /// The user's Maildir (made by the first login).
    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail").join(USER)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The reader's settings: implicit TLS trusting our certificate, IDLE-paced (the
    /// interval is an hour, so only IDLE can bring mail in quickly).
    fn config(&self) -> ImapConfig {
        ImapConfig {
            host: "127.0.0.1".into(),
            port: self.tls_port,
            tls: ImapTls::Tls,
            user: USER.into(),
            password: PASSWORD.into(),
            mailbox: "INBOX".into(),
            processed_folder: "hubgate/processed".into(),
            interval: Duration::from_secs(3600),
            ca_file: Some(self.ca()),
        }
    }

    /// The tests' own client: plain IMAP on the other port.
    fn observer(&self) -> ImapConfig {
        ImapConfig { port: self.plain_port, tls: ImapTls::Plain, ca_file: None, ..self.config() }
    }

    async fn session(&self) -> client::ImapSession {
        client::connect(&self.observer()).await.unwrap_or_else(|e| panic!("observer login: {e}")).0
    }

    /// Delivers a message into `mailbox` (as the provider's MTA would).
    async fn append(&self, mailbox: &str, raw: &[u8]) {
        let mut s = self.session().await;
        s.append(mailbox, None, None, raw).await.unwrap_or_else(|e| panic!("APPEND: {e}"));
        client::logout(&mut s).await;
    }

    /// How many messages `mailbox` holds (0 when it does not exist).
    async fn count(&self, mailbox: &str) -> u32 {
        let mut s = self.session().await;
        let n = s.examine(mailbox).await.map(|m| m.exists).unwrap_or(0);
        client::logout(&mut s).await;
        n
    }

    async fn uid_validity(&self, mailbox: &str) -> i64 {
        let mut s = self.session().await;
        let v = s.examine(mailbox).await.ok().and_then(|m| m.uid_validity).unwrap_or(0);
        client::logout(&mut s).await;
        i64::from(v)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A partner's mail with its own Message-ID.
fn mail(n: u32, subject: &str) -> Vec<u8> {
    format!(
        "From: Phòng tích hợp MoMo <tich.hop@momo.vn>\r\nTo: hub@ipos.vn\r\nSubject: {subject}\r\n\
         Message-ID: <imap-{n}-{}@momo.vn>\r\nDate: Tue, 24 Nov 2026 09:{:02}:00 +0700\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Kính gửi iPOS, nhờ anh chị mở cổng cho quán số {n}.\r\n",
        std::process::id(),
        n % 60
    )
    .into_bytes()
}

fn test_options(owner: &str) -> imap::Options {
    imap::Options {
        owner: owner.into(),
        lease: Duration::from_secs(3),
        idle_max: Duration::from_secs(25 * 60),
        backoff_max: Duration::from_secs(1),
    }
}

async fn app_with(backend: Backend, cfg: ImapConfig) -> Option<TestApp> {
    TestApp::start_with(backend, move |c| c.mail.imap = Some(cfg)).await
}

/// A running reader and the switch that stops it.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start_reader(app: &TestApp, owner: &str) -> Running {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(imap::run(app.state.services.clone(), test_options(owner), rx));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn imap_blobs(app: &TestApp) -> Vec<(String, Vec<u8>, Option<String>)> {
    app.with_conn(|c| {
        mail_blobs::table
            .filter(mail_blobs::source.eq("imap"))
            .order(mail_blobs::id.asc())
            .select((mail_blobs::status, mail_blobs::raw, mail_blobs::file_name))
            .load(c)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn blob_count(app: &TestApp) -> i64 {
    app.with_conn(|c| mail_blobs::table.count().get_result(c)).unwrap_or_else(|e| panic!("{e}"))
}

fn subjects(app: &TestApp) -> Vec<String> {
    app.with_conn(|c| mail_messages::table.order(mail_messages::id.asc()).select(mail_messages::subject).load(c))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn mailbox_row(app: &TestApp, cfg: &ImapConfig) -> state::MailboxState {
    let account = cfg.account();
    app.with_conn(|c| state::get(c, &account)).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("no row"))
}

async fn wait_for_blobs(app: &TestApp, n: usize) {
    // A blob is written as "received" and gets its final status once read: wait for that,
    // or a slow machine sees the last one mid-way.
    let settled = || imap_blobs(app).iter().filter(|b| b.0 != "received").count();
    poll(&format!("{n} message(s) stored from IMAP"), async || (settled() >= n).then_some(())).await;
}

async fn wait_for_count(server: &Dovecot, mailbox: &str, n: u32) {
    poll(&format!("{n} message(s) in {mailbox}"), async || (server.count(mailbox).await == n).then_some(())).await;
}

mod new_mail_is_stored_moved_and_never_read_twice {
    use super::*;

    async fn run(backend: Backend) {
        let Some(server) = Dovecot::start("") else { return };
        let cfg = server.config();
        let Some(app) = app_with(backend, cfg.clone()).await else { return };
        server.append("INBOX", &mail(1, "Mở cổng MoMo cho Cà phê Sáng")).await;
        server.append("INBOX", &mail(2, "Mở cổng MoMo cho Bún chả Hà Nội")).await;

        let reader = start_reader(&app, "node-a");
        wait_for_blobs(&app, 2).await;
        wait_for_count(&server, "hubgate/processed", 2).await;
        assert_eq!(server.count("INBOX").await, 0, "stored mail leaves the mailbox");
        let blobs = imap_blobs(&app);
        assert!(blobs.iter().all(|(status, _, _)| status == "stored"), "{blobs:?}");
        assert_eq!(blobs[0].1, mail(1, "Mở cổng MoMo cho Cà phê Sáng"), "the raw bytes are kept as fetched");
        assert!(blobs[0].2.as_deref().is_some_and(|f| f.starts_with("INBOX;UIDVALIDITY=")), "{:?}", blobs[0].2);
        assert_eq!(subjects(&app), ["Mở cổng MoMo cho Cà phê Sáng", "Mở cổng MoMo cho Bún chả Hà Nội"]);
        let row = mailbox_row(&app, &cfg);
        assert_eq!(row.uid_validity, Some(server.uid_validity("INBOX").await));
        assert_eq!(row.last_uid, 2);
        assert_eq!(row.lease_owner.as_deref(), Some("node-a"));

        // The reader is in IDLE now, and the poll interval is an hour: only IDLE wakes it.
        server.append("INBOX", &mail(3, "Xác nhận mở cổng quán 3")).await;
        wait_for_blobs(&app, 3).await;
        wait_for_count(&server, "hubgate/processed", 3).await;

        reader.stop().await;
        assert_eq!(mailbox_row(&app, &cfg).lease_owner, None, "a stopped reader gives its lease back");

        // A new reader (a restart) reads only what came since.
        server.append("INBOX", &mail(4, "Mở cổng cho quán 4")).await;
        let reader = start_reader(&app, "node-a-restarted");
        wait_for_blobs(&app, 4).await;
        wait_for_count(&server, "hubgate/processed", 4).await;
        reader.stop().await;
        let statuses: Vec<String> = imap_blobs(&app).into_iter().map(|b| b.0).collect();
        assert_eq!(statuses, ["stored"; 4], "each message stored once, none a re-read duplicate");
        assert_eq!(subjects(&app).len(), 4);
        assert_eq!(server.reader_logins(), 2, "one connection per reader: IDLE, not reconnecting to poll");
    }

    crate::on_both_backends!(run);
}

mod a_crash_between_storing_and_moving_loses_and_repeats_nothing {
    use super::*;

    async fn run(backend: Backend) {
        let Some(server) = Dovecot::start("") else { return };
        let cfg = server.config();
        let Some(app) = app_with(backend, cfg.clone()).await else { return };
        // UID 1: stored and recorded by a reader that died before moving it.
        let recorded = mail(1, "Đã lưu, chưa kịp chuyển");
        // UID 2: stored by a reader that died before recording its UID.
        let stored = mail(2, "Đã lưu, chưa ghi UID");
        server.append("INBOX", &recorded).await;
        server.append("INBOX", &stored).await;
        let mail_cfg = app.state.config.mail.clone();
        app.with_conn(|c| hubgate::mail::inbound::service::ingest(c, &mail_cfg, &stored, "imap", None))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (account, validity) = (cfg.account(), server.uid_validity("INBOX").await);
        app.with_conn(|c| {
            let now = hubgate::db::now();
            state::acquire(c, &account, "dead-node", now, now)?;
            state::start_validity(c, &account, "dead-node", validity, now)?;
            state::record_uid(c, &account, "dead-node", validity, 1, now)
        })
        .unwrap_or_else(|e| panic!("{e}"));

        let reports =
            imap::fetch_once(&app.state, &test_options("node-b")).await.unwrap_or_else(|e| panic!("{e}")).reports;
        assert_eq!(reports.len(), 1, "UID 1 was recorded: moved, not read again: {reports:?}");
        assert_eq!(reports[0].status, "duplicate", "UID 2 is read again and recognised");
        assert_eq!(blob_count(&app), 1, "UID 1 was never stored by this test, and is still not");
        assert_eq!(server.count("INBOX").await, 0);
        assert_eq!(server.count("hubgate/processed").await, 2, "both moved, none lost");
        assert_eq!(mailbox_row(&app, &cfg).last_uid, 2);

        let again =
            imap::fetch_once(&app.state, &test_options("node-b")).await.unwrap_or_else(|e| panic!("{e}")).reports;
        assert!(again.is_empty(), "{again:?}");
    }

    crate::on_both_backends!(run);
}

/// A processed folder the server will not make: mail is still stored, stays in the
/// mailbox without being read again, and is moved once the folder can be made.
mod a_broken_processed_folder_holds_up_no_mail_and_nothing_is_read_twice {
    use super::*;

    async fn run(backend: Backend) {
        let Some(server) = Dovecot::start("") else { return };
        let cfg = server.config();
        let Some(app) = app_with(backend, cfg.clone()).await else { return };
        assert_eq!(server.count("INBOX").await, 0);
        // A file where Dovecot keeps the folder: CREATE and MOVE fail.
        let blocker = server.maildir().join(".hubgate.processed");
        std::fs::write(&blocker, b"").unwrap_or_else(|e| panic!("{e}"));
        server.append("INBOX", &mail(1, "Thư một")).await;
        server.append("INBOX", &mail(2, "Thư hai")).await;

        let first = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}"));
        let statuses: Vec<&str> = first.reports.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(statuses, ["stored", "stored"], "mail gets in while the folder is broken");
        assert!(first.not_moved.as_deref().is_some_and(|w| w.contains("CREATE")), "{:?}", first.not_moved);
        assert_eq!(server.count("INBOX").await, 2, "left where it was");
        let row = mailbox_row(&app, &cfg);
        assert_eq!(row.last_uid, 2);
        assert!(row.last_error.as_deref().is_some_and(|e| e.contains("CREATE")), "{:?}", row.last_error);

        let second = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(second.reports.is_empty(), "not read again: {:?}", second.reports);
        assert!(second.not_moved.is_some());

        std::fs::remove_file(&blocker).unwrap_or_else(|e| panic!("{e}"));
        let third = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(third.reports.is_empty(), "moved without being read: {:?}", third.reports);
        assert_eq!(third.not_moved, None);
        assert_eq!(server.count("INBOX").await, 0);
        assert_eq!(server.count("hubgate/processed").await, 2);
        assert_eq!(blob_count(&app), 2);
        assert_eq!(mailbox_row(&app, &cfg).last_error, None, "the error clears once it works");
    }

    crate::on_both_backends!(run);
}

mod a_new_uidvalidity_reads_the_mailbox_again {
    use super::*;

    async fn run(backend: Backend) {
        let Some(server) = Dovecot::start("") else { return };
        let cfg = ImapConfig { mailbox: "doitac".into(), ..server.config() };
        let Some(app) = app_with(backend, cfg.clone()).await else { return };
        let mut s = server.session().await;
        s.create("doitac").await.unwrap_or_else(|e| panic!("{e}"));
        client::logout(&mut s).await;
        server.append("doitac", &mail(1, "Thư một")).await;
        server.append("doitac", &mail(2, "Thư hai")).await;
        let first = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}")).reports;
        assert_eq!(first.len(), 2);
        let old_validity = mailbox_row(&app, &cfg).uid_validity;

        // The mailbox is deleted and made again: its UIDs start again from 1.
        let mut s = server.session().await;
        s.delete("doitac").await.unwrap_or_else(|e| panic!("{e}"));
        s.create("doitac").await.unwrap_or_else(|e| panic!("{e}"));
        client::logout(&mut s).await;
        server.append("doitac", &mail(3, "Thư ba, UID 1 mới")).await;
        assert_ne!(Some(server.uid_validity("doitac").await), old_validity);

        let second = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}")).reports;
        assert_eq!(second.len(), 1, "UID 1 of the new mailbox is new mail, not one already read");
        assert_eq!(second[0].status, "stored");
        assert_eq!(server.count("hubgate/processed").await, 3);
    }

    crate::on_both_backends!(run);
}

mod an_unreadable_message_is_kept_moved_and_not_retried {
    use super::*;

    async fn run(backend: Backend) {
        let Some(server) = Dovecot::start("") else { return };
        let Some(app) = app_with(backend, server.config()).await else { return };
        let junk = b"\xff\xfe day khong phai la mot la thu\r\n\r\n\x01\x02 van ban rac\r\n".to_vec();
        server.append("INBOX", &junk).await;
        let reports = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}")).reports;
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].status, "unreadable", "{reports:?}");
        let blobs = imap_blobs(&app);
        assert_eq!(blobs.len(), 1);
        assert_eq!(blobs[0].0, "unreadable");
        assert_eq!(blobs[0].1, junk, "kept byte for byte");
        assert_eq!(server.count("INBOX").await, 0);
        assert_eq!(server.count("hubgate/processed").await, 1);
        let again = imap::fetch_once(&app.state, &test_options("n")).await.unwrap_or_else(|e| panic!("{e}")).reports;
        assert!(again.is_empty(), "not retried: {again:?}");
    }

    crate::on_both_backends!(run);
}

/// The reader reconnects after the server went away and came back.
#[actix_web::test]
async fn the_reader_reconnects_after_the_server_restarts() {
    let Some(mut server) = Dovecot::start("") else { return };
    let app = TestApp::start_with(Backend::Sqlite, |c| c.mail.imap = Some(server.config()))
        .await
        .unwrap_or_else(|| panic!("sqlite"));
    let reader = start_reader(&app, "n");
    server.append("INBOX", &mail(1, "Trước khi máy chủ khởi động lại")).await;
    wait_for_blobs(&app, 1).await;

    server.stop();
    // On the same ports (the reader's settings name them): no new ports to try here.
    server.launch().unwrap_or_else(|e| panic!("dovecot did not start again on its ports: {e}"));
    server.append("INBOX", &mail(2, "Sau khi máy chủ khởi động lại")).await;
    wait_for_blobs(&app, 2).await;
    wait_for_count(&server, "hubgate/processed", 2).await;
    reader.stop().await;
    assert!(server.reader_logins() >= 2, "a new login after the restart:\n{}", server.log());
    assert_eq!(subjects(&app).len(), 2);
}

/// A server without IDLE and MOVE, reached with STARTTLS: the reader polls, and moves
/// with COPY, \Deleted and UID EXPUNGE; the copies are not marked deleted.
#[actix_web::test]
async fn without_idle_or_move_the_reader_polls_and_copies() {
    let caps = "protocol imap {\n  imap_capability = IMAP4rev1 LITERAL+ SASL-IR UIDPLUS NAMESPACE CHILDREN\n}";
    let Some(server) = Dovecot::start(caps) else { return };
    let cfg = ImapConfig {
        port: server.plain_port,
        tls: ImapTls::StartTls,
        interval: Duration::from_secs(1),
        ..server.config()
    };
    let app = TestApp::start_with(Backend::Sqlite, |c| c.mail.imap = Some(cfg.clone()))
        .await
        .unwrap_or_else(|| panic!("sqlite"));
    let check = imap::check(&app.state).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check.caps, client::Caps { idle: false, moves: false, uidplus: true });

    let reader = start_reader(&app, "n");
    server.append("INBOX", &mail(1, "Qua máy chủ không có IDLE")).await;
    wait_for_blobs(&app, 1).await;
    server.append("INBOX", &mail(2, "Thư thứ hai, lần hỏi sau")).await;
    wait_for_blobs(&app, 2).await;
    wait_for_count(&server, "hubgate/processed", 2).await;
    reader.stop().await;
    assert_eq!(server.count("INBOX").await, 0);
    let mut s = server.session().await;
    s.select("hubgate/processed").await.unwrap_or_else(|e| panic!("{e}"));
    let fetched: Vec<_> = s
        .fetch("1:*", "FLAGS")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client::logout(&mut s).await;
    assert_eq!(fetched.len(), 2);
    let deleted = fetched.iter().filter(|f| f.flags().any(|fl| fl == async_imap::types::Flag::Deleted)).count();
    assert_eq!(deleted, 0, "the copies in the processed folder are not marked deleted");
}

/// Two nodes: only the lease holder logs in; the other takes over once it stops.
mod only_one_node_reads_the_mailbox {
    use super::*;

    async fn run(backend: Backend) {
        let Some(server) = Dovecot::start("") else { return };
        let cfg = server.config();
        let Some(app) = app_with(backend, cfg.clone()).await else { return };
        let a = start_reader(&app, "node-a");
        let b = start_reader(&app, "node-b");
        for n in 1..=3 {
            server.append("INBOX", &mail(n, &format!("Thư {n}"))).await;
        }
        wait_for_blobs(&app, 3).await;
        wait_for_count(&server, "hubgate/processed", 3).await;
        assert_eq!(server.reader_logins(), 1, "the node without the lease never logged in");
        let holder = mailbox_row(&app, &cfg).lease_owner.unwrap_or_else(|| panic!("no holder"));
        let account = cfg.account();
        let other_takes = app
            .with_conn(|c| {
                let now = hubgate::db::now();
                state::acquire(c, &account, "node-c", now, now + chrono::Duration::seconds(3))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!other_takes, "a held lease cannot be taken");

        let (stopped, survivor) = if holder == "node-a" { (a, b) } else { (b, a) };
        stopped.stop().await;
        server.append("INBOX", &mail(4, "Thư 4, sau khi nút kia dừng")).await;
        wait_for_blobs(&app, 4).await;
        assert_eq!(server.reader_logins(), 2);
        assert_ne!(mailbox_row(&app, &cfg).lease_owner, Some(holder), "the other node took over");
        survivor.stop().await;
        let statuses: Vec<String> = imap_blobs(&app).into_iter().map(|b| b.0).collect();
        assert_eq!(statuses, ["stored"; 4]);
    }

    crate::on_both_backends!(run);
}

fn cli(data: &Path, server: &Dovecot, password: &str, args: &[&str], ca: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubgate"));
    cmd.args(args)
        .env("DATABASE_URL", format!("sqlite://{}/hub.db", data.display()))
        .env("HUBGATE_DATA_DIR", data)
        .env("HUBGATE_LOG", "trace")
        .env("HUBGATE_IMAP_HOST", "127.0.0.1")
        .env("HUBGATE_IMAP_PORT", server.tls_port.to_string())
        .env("HUBGATE_IMAP_USER", USER)
        .env("HUBGATE_IMAP_PASSWORD", password);
    if ca {
        cmd.env("HUBGATE_IMAP_CA_FILE", server.ca());
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The CLI, logging everything (trace): a wrong password and an untrusted certificate
/// are clear errors; the password shows nowhere, neither in errors nor in the log.
#[test]
fn the_cli_checks_and_fetches_and_never_shows_the_password() {
    let Some(server) = Dovecot::start("") else { return };
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrong = "Sai-mat-khau-2026";

    let (ok, out) = cli(data.path(), &server, wrong, &["mail", "imap-check"], true);
    assert!(!ok, "{out}");
    assert!(out.contains("sai tên đăng nhập hoặc mật khẩu"), "{out}");
    assert!(out.contains("Authentication failed"), "the server's own words: {out}");
    assert!(!out.contains(wrong), "{out}");

    let (ok, out) = cli(data.path(), &server, PASSWORD, &["mail", "imap-check"], false);
    assert!(!ok, "{out}");
    assert!(out.contains("imap_ca_file"), "a self-signed certificate names the fix: {out}");

    let (ok, out) = cli(data.path(), &server, PASSWORD, &["mail", "imap-check"], true);
    assert!(ok, "{out}");
    assert!(out.contains("idle\tyes") && out.contains("move\tyes"), "{out}");
    assert!(out.contains("created on first read"), "{out}");
    assert!(out.contains("TRACE") || out.contains("DEBUG") || out.contains("INFO"), "the log is on: {out}");
    assert!(!out.contains(PASSWORD), "{out}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(server.append("INBOX", &mail(1, "Qua dòng lệnh")));
    let (ok, out) = cli(data.path(), &server, PASSWORD, &["mail", "imap-fetch"], true);
    assert!(ok, "{out}");
    assert!(out.contains("stored") && out.contains("Qua dòng lệnh"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
    assert_eq!(rt.block_on(server.count("hubgate/processed")), 1);

    // The failed attempt stays on the mailbox's row, without the password either.
    let (ok, out) = cli(data.path(), &server, wrong, &["mail", "imap-fetch"], true);
    assert!(!ok, "{out}");
    let (_, out) = cli(data.path(), &server, PASSWORD, &["mail", "imap-check"], true);
    assert!(out.contains("last_error\tMáy chủ IMAP từ chối đăng nhập"), "{out}");
    assert!(out.contains("last_uid\t1"), "{out}");
    assert!(!out.contains(wrong), "{out}");

    // `hubgate worker` runs the reader: new mail arrives without any command.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubgate"));
    cmd.arg("worker")
        .env("DATABASE_URL", format!("sqlite://{}/hub.db", data.path().display()))
        .env("HUBGATE_DATA_DIR", data.path())
        .env("HUBGATE_LOG", "info")
        .env("HUBGATE_IMAP_HOST", "127.0.0.1")
        .env("HUBGATE_IMAP_PORT", server.tls_port.to_string())
        .env("HUBGATE_IMAP_USER", USER)
        .env("HUBGATE_IMAP_PASSWORD", PASSWORD)
        .env("HUBGATE_IMAP_CA_FILE", server.ca());
    let log = data.path().join("worker.log");
    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    cmd.stdout(file.try_clone().unwrap_or_else(|e| panic!("{e}"))).stderr(file);
    let _worker = KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("{e}")));
    rt.block_on(async {
        server.append("INBOX", &mail(2, "Qua hubgate worker")).await;
        let started = std::time::Instant::now();
        while server.count("hubgate/processed").await != 2 {
            let shown = || format!("{}\n{}", std::fs::read_to_string(&log).unwrap_or_default(), server.log());
            assert!(started.elapsed() < Duration::from_secs(60), "the worker read no mail:\n{}", shown());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let pool =
        hubgate::db::pool(&format!("sqlite://{}/hub.db", data.path().display()), 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
    let subjects: Vec<String> =
        mail_messages::table.select(mail_messages::subject).load(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(subjects, ["Qua dòng lệnh", "Qua hubgate worker"]);
    assert!(!std::fs::read_to_string(&log).unwrap_or_default().contains(PASSWORD));
}
