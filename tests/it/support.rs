//! Test harness: the real app on 127.0.0.1 over a fresh database per test.
//!
//! Every database test runs twice through [`db_test!`]: on a temp-file SQLite and on a
//! fresh PostgreSQL database created under `HUBGATE_TEST_PG`, or, without that
//! variable, on a local cluster the harness starts itself (see `local_pg.rs`). A test
//! that cannot run says so through [`skipped`]; under `CI` that is a failure.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpServer;
use diesel::Connection;
use diesel::RunQueryDsl;
use hubgate::accounts::Role;
use hubgate::accounts::service::{self, UserInput};
use hubgate::audit::Actor;
use hubgate::config::Config;
use hubgate::db::{Backend, DbConn, PooledConn};
use hubgate::web::AppState;

pub const PASSWORD: &str = "mat-khau-thu-nghiem-1";

/// The two tests `sqlite` and `postgres`, each calling `$run(backend).await`.
#[macro_export]
macro_rules! on_both_backends {
    ($run:ident) => {
        #[actix_web::test]
        async fn sqlite() {
            $run(hubgate::db::Backend::Sqlite).await;
        }

        #[actix_web::test]
        async fn postgres() {
            $run(hubgate::db::Backend::Postgres).await;
        }
    };
}

/// Runs the body once per backend, as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[actix_web::test]
            async fn sqlite() {
                let $app = $crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
                $body
            }

            #[actix_web::test]
            async fn postgres() {
                let Some($app) = $crate::support::TestApp::start_pg().await else {
                    return;
                };
                $body
            }
        }
    };
}

/// The database behind one test; dropped (PostgreSQL) or deleted (SQLite) at the end.
pub enum TestDb {
    Sqlite,
    Pg { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Pg { admin_url, name } = self
            && let Ok(mut conn) = diesel::pg::PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub backend: Backend,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    server: actix_web::dev::ServerHandle,
    _db: TestDb,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The PostgreSQL server for tests: `HUBGATE_TEST_PG`, else a local cluster the
/// harness starts from the installed server binaries ([`crate::local_pg`]). None only
/// when neither is possible; that skip is reported by [`skipped`], and under `CI`
/// (which must set `HUBGATE_TEST_PG`) it is a failure.
pub fn pg_admin_url() -> Option<String> {
    if let Ok(url) = std::env::var("HUBGATE_TEST_PG")
        && !url.is_empty()
    {
        return Some(url);
    }
    assert!(std::env::var("CI").is_err(), "CI must set HUBGATE_TEST_PG: PostgreSQL tests may not be skipped");
    static LOCAL: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    match LOCAL.get_or_init(crate::local_pg::admin_url) {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            skipped(&format!("no PostgreSQL (set HUBGATE_TEST_PG): {why}"));
            None
        }
    }
}

/// Says that the running test did not check what it is for, where the person running
/// the suite sees it. `eprintln!` would not do: both `cargo test` and nextest swallow
/// the output of passing tests. Under `cargo test` (one process) the line goes straight
/// to the process's stderr, which is the terminal. nextest shows a passing test's output
/// only when told to for every run, and has no "skipped at run time": there the skip
/// fails with its reason, unless `HUBGATE_TEST_ALLOW_SKIPS=1` says that this machine
/// knowingly lacks it. Under `CI` a skip is always a failure.
pub fn skipped(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    assert!(std::env::var("CI").is_err(), "CI may not skip {test}: {why}");
    let allowed = std::env::var("HUBGATE_TEST_ALLOW_SKIPS").is_ok_and(|v| v == "1");
    assert!(
        std::env::var("NEXTEST").is_err() || allowed,
        "{test} cannot run here: {why}. Under nextest a skip fails; set HUBGATE_TEST_ALLOW_SKIPS=1 to skip it"
    );
    let line = format!("\nSKIPPED, DID NOT RUN: {test}: {why}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Creates a fresh PostgreSQL database and returns (its URL, its name).
pub fn fresh_pg_database(admin_url: &str) -> (String, String) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("hgtest_{}_{}_{}", std::process::id(), n, rand_suffix());
    let mut conn = diesel::pg::PgConnection::establish(admin_url).unwrap_or_else(|e| panic!("HUBGATE_TEST_PG: {e}"));
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("create db: {e}"));
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    (format!("{base}/{name}"), name)
}

fn rand_suffix() -> u32 {
    use rand::Rng;
    rand::thread_rng().r#gen::<u32>() % 1_000_000
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await.unwrap_or_else(|| panic!("backend not available"))
    }

    pub async fn start_pg() -> Option<TestApp> {
        Self::start_with(Backend::Postgres, |_| {}).await
    }

    /// Starts the app; `tweak` may adjust the configuration first.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (database_url, db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/hubgate.db", data_dir.path().display()), TestDb::Sqlite),
            Backend::Postgres => {
                let admin = pg_admin_url()?;
                let (url, name) = fresh_pg_database(&admin);
                (url, TestDb::Pg { admin_url: admin, name })
            }
        };
        let env = vec![
            ("DATABASE_URL".to_string(), database_url.clone()),
            ("HUBGATE_DATA_DIR".to_string(), data_dir.path().display().to_string()),
            ("HUBGATE_DB_POOL_SIZE".to_string(), "4".to_string()),
        ];
        let mut config = Config::from_sources(None, &env).unwrap_or_else(|e| panic!("config: {e:#}"));
        tweak(&mut config);
        let pool =
            hubgate::db::pool(&config.database_url, config.db_pool_size).unwrap_or_else(|e| panic!("pool: {e:#}"));
        {
            let mut conn = pool.get().unwrap_or_else(|e| panic!("conn: {e}"));
            hubgate::app::migrate(&mut conn).unwrap_or_else(|e| panic!("migrate: {e:#}"));
        }
        let state = AppState::new(config, pool).unwrap_or_else(|e| panic!("state: {e:#}"));
        let (base, handle) = serve(&state);
        Some(TestApp { base, state, backend, data_dir, database_url, server: handle, _db: db })
    }

    /// A second server over this test's database with its own configuration (another
    /// node, or this one restarted after a configuration change); returns its base URL.
    pub fn serve_again(&self, tweak: impl FnOnce(&mut Config)) -> String {
        self.serve_node(tweak).0
    }

    /// [`Self::serve_again`], with the other node's state (its clock, its caches).
    pub fn serve_node(&self, tweak: impl FnOnce(&mut Config)) -> (String, AppState) {
        let mut config = (*self.state.config).clone();
        tweak(&mut config);
        let state = AppState::new(config, self.state.pool.clone()).unwrap_or_else(|e| panic!("state: {e:#}"));
        (serve(&state).0, state)
    }

    pub fn conn(&self) -> PooledConn {
        self.state.pool.get().unwrap_or_else(|e| panic!("conn: {e}"))
    }

    /// Creates a user directly through the service (as the CLI would).
    pub fn create_user(&self, email: &str, roles: &[Role]) -> hubgate::accounts::User {
        let mut conn = self.conn();
        let input = UserInput {
            email: email.into(),
            name: format!("Người dùng {email}"),
            password: PASSWORD.into(),
            roles: roles.to_vec(),
        };
        service::create_user(&mut conn, &Actor::system("test"), &input).unwrap_or_else(|e| panic!("create user: {e:?}"))
    }

    /// A browser without a session.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A browser signed in as `email` (created with [`PASSWORD`]).
    pub async fn login(&self, email: &str) -> Browser {
        let b = self.browser();
        let r = b.login(email, PASSWORD).await;
        assert_eq!(r.status, 303, "login of {email} failed: {}", r.body);
        b
    }

    /// Runs SQL-free checks against the database with the app's own models.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut DbConn) -> T) -> T {
        let mut conn = self.conn();
        f(&mut conn)
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

/// Runs the app for `state` on a free port of 127.0.0.1: (base URL, server handle).
fn serve(state: &AppState) -> (String, actix_web::dev::ServerHandle) {
    let metrics = hubgate::web::metrics(&state.pool).unwrap_or_else(|e| panic!("metrics: {e}"));
    let app_state = state.clone();
    let server = HttpServer::new(move || hubgate::web::build_app(app_state.clone(), metrics.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://{addr}"), handle)
}

/// A response as a test reads it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    pub fn csrf(&self) -> Option<String> {
        let marker = "name=\"_csrf\" value=\"";
        let start = self.body.find(marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_string())
    }

    /// The guard's answer to a visitor without a (valid) session.
    pub fn redirects_to_login(&self) -> bool {
        self.status == 303 && self.location.as_deref().is_some_and(|l| l.starts_with("/login?next="))
    }
}

/// A paged list as a person reads it: the count line above its table ("12 thư · trang
/// 1/1", "3 yêu cầu · trang …") and the ids its rows link to (`<a href="{link}ID"`).
pub fn listed(body: &str, noun: &str, link: &str) -> (usize, std::collections::BTreeSet<i64>) {
    let marker = format!(" {noun} · trang ");
    let line = body.find(&marker).unwrap_or_else(|| panic!("no count line “{marker}” on {body}"));
    let count = body[..line].rsplit('>').next().and_then(|n| n.trim().parse().ok());
    let count = count.unwrap_or_else(|| panic!("no count before “{marker}” on {body}"));
    let rows = &body[body.find("<tbody>").unwrap_or_else(|| panic!("no table on {body}"))..];
    let ids = rows
        .split(&format!("<a href=\"{link}"))
        .skip(1)
        .filter_map(|s| s.split_once('"').and_then(|(id, _)| id.parse().ok()))
        .collect();
    (count, ids)
}

/// A cookie-keeping HTTP client that does not follow redirects and remembers the
/// last CSRF token it saw on a page, like a browser tab.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    csrf: std::sync::Mutex<Option<String>>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self::with_headers(base, &[])
    }

    /// A browser whose every request carries these headers (as a proxy in front adds them).
    pub fn with_headers(base: &str, headers: &[(&'static str, &str)]) -> Self {
        let mut defaults = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            defaults.insert(*name, value.parse().unwrap_or_else(|e| panic!("{value}: {e}")));
        }
        Self::with_builder(base, reqwest::Client::builder().default_headers(defaults))
    }

    /// A browser on another machine: its connections leave from `address` (any of
    /// 127.0.0.0/8 on Linux), so a proxy in front sees a different client.
    pub fn from_address(base: &str, address: std::net::IpAddr) -> Self {
        Self::with_builder(base, reqwest::Client::builder().local_address(address))
    }

    fn with_builder(base: &str, builder: reqwest::ClientBuilder) -> Self {
        let client = builder
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Browser { base: base.to_string(), client, csrf: std::sync::Mutex::new(None) }
    }

    async fn read(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        Page { status, location, body }
    }

    async fn send_get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.base, path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Page {
        let page = Self::read(self.send_get(path).await).await;
        if let Some(t) = page.csrf()
            && let Ok(mut slot) = self.csrf.lock()
        {
            *slot = Some(t);
        }
        page
    }

    /// One response header of a GET.
    pub async fn header(&self, path: &str, name: &str) -> Option<String> {
        let resp = self.client.get(format!("{}{}", self.base, path)).send().await.ok()?;
        resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// Status, headers and bytes of a GET (downloads, previews).
    pub async fn fetch(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self.send_get(path).await;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
    }

    /// The raw bytes of a GET (downloads).
    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let resp = self.send_get(path).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
    }

    /// The session's CSRF token, fetched from the login page when none was seen yet.
    pub async fn token(&self) -> String {
        let known = self.csrf.lock().ok().and_then(|s| s.clone());
        match known {
            Some(t) => t,
            None => {
                // Any page with a form carries it: login when signed out, home (staff) or /app (merchants) when in.
                for path in ["/login", "/", "/app", "/setup"] {
                    if let Some(t) = self.get(path).await.csrf() {
                        return t;
                    }
                }
                String::new()
            }
        }
    }

    /// Posts a form with the session's CSRF token, as a page's form would.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.token().await;
        let mut all: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Any method without a body (the API's PUT and DELETE in the role matrix).
    pub async fn send(&self, method: &str, path: &str) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let resp = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        Self::read(resp).await
    }

    /// Posts exactly these fields (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let resp = self
            .client
            .post(format!("{}{}", self.base, path))
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let page = Self::read(resp).await;
        if let Some(t) = page.csrf()
            && let Ok(mut slot) = self.csrf.lock()
        {
            *slot = Some(t);
        }
        page
    }

    /// Posts a multipart form as an upload page does: the session's CSRF token as the
    /// first field, then the parts `build` adds.
    pub async fn upload(
        &self,
        path: &str,
        build: impl FnOnce(reqwest::multipart::Form) -> reqwest::multipart::Form,
    ) -> Page {
        let token = self.token().await;
        self.multipart(path, build(reqwest::multipart::Form::new().text("_csrf", token))).await
    }

    /// Posts exactly this multipart form (no CSRF token added).
    pub async fn multipart(&self, path: &str, form: reqwest::multipart::Form) -> Page {
        let resp = self
            .client
            .post(format!("{}{}", self.base, path))
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        Self::read(resp).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Page {
        let _ = self.get("/login").await;
        let page = self.post("/login", &[("email", email), ("password", password)]).await;
        // A new session has a new token: forget the old one.
        if page.status == 303
            && let Ok(mut slot) = self.csrf.lock()
        {
            *slot = None;
        }
        page
    }
}

/// Ingests the first corpus mail (tests/data/mail) whose name starts with `prefix`;
/// returns the stored message's id.
pub fn ingest_corpus(app: &TestApp, prefix: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")).filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let path = files
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .unwrap_or_else(|| panic!("no test mail {prefix}"));
    let raw = std::fs::read(&path).unwrap_or_default();
    let cfg = app.state.config.mail.clone();
    app.with_conn(|c| hubgate::mail::inbound::service::ingest(c, &cfg, &raw, "test", None))
        .ok()
        .and_then(|r| r.id)
        .unwrap_or(-1)
}

/// The id of the partner with this code (-1 when there is none).
pub fn partner_id(app: &TestApp, code: &str) -> i64 {
    use diesel::{ExpressionMethods, QueryDsl};
    use hubgate::db::schema::partners;
    app.with_conn(|c| partners::table.filter(partners::code.eq(code)).select(partners::id).first(c)).unwrap_or(-1)
}

impl TestApp {
    /// A merchant account that finished sign-up: phone set, e-mail verified.
    pub fn create_merchant(&self, email: &str) -> hubgate::accounts::User {
        use hubgate::accounts::merchant::{self, SignupInput};
        use hubgate::accounts::models::{self, UserChanges};
        let mut conn = self.conn();
        let input = SignupInput {
            email: email.into(),
            name: format!("Chủ quán {email}"),
            phone: "0912 345 678".into(),
            password: PASSWORD.into(),
            confirm: PASSWORD.into(),
        };
        let user = merchant::signup(&mut conn, &self.state.config, &input, email)
            .unwrap_or_else(|e| panic!("signup {email}: {e:?}"));
        models::update(
            &mut conn,
            user.id,
            &UserChanges { email_verified_at: Some(hubgate::db::now()), ..Default::default() },
        )
        .unwrap_or_else(|e| panic!("verify {email}: {e}"))
    }

    /// Creates a business owned by `owner` through the service; returns its id.
    pub fn create_business(&self, owner: &hubgate::accounts::User, name: &str) -> i64 {
        use hubgate::business::service::{self, BusinessInput};
        let input = BusinessInput { name: name.into(), website: "cafe.vn".into(), features: vec!["sync".into()] };
        self.with_conn(|c| service::create_business(c, &Actor::user(owner.id, &owner.email), owner.id, &input))
            .unwrap_or_else(|e| panic!("create business: {e:?}"))
            .id
    }

    /// The text of the newest outbox mail to `to` whose subject contains `subject`.
    pub fn last_mail_to(&self, to: &str, subject: &str) -> Option<String> {
        use diesel::{ExpressionMethods, QueryDsl};
        use hubgate::db::schema::mail_outbox;
        let rows: Vec<(String, String, String)> = self
            .with_conn(|c| {
                mail_outbox::table
                    .order(mail_outbox::id.desc())
                    .select((mail_outbox::to_addrs, mail_outbox::subject, mail_outbox::text_body))
                    .load(c)
            })
            .unwrap_or_default();
        rows.into_iter().find(|(t, s, _)| t.contains(to) && s.contains(subject)).map(|(_, _, body)| body)
    }
}

/// The first link in a mail body starting with `base` + `path`, as a path for [`Browser`].
pub fn link_in(body: &str, base: &str, path: &str) -> Option<String> {
    let start = body.find(&format!("{base}{path}"))?;
    let link: String = body[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    Some(link.trim_start_matches(base).to_string())
}

/// A test on both databases with a local webhook receiver (`$rx`) and an app that may
/// call loopback addresses (`$app`).
macro_rules! receiver_test {
    ($name:ident, |$app:ident, $rx:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run(backend: hubgate::db::Backend) {
                let $rx = crate::notify::Receiver::start().await;
                let Some($app) = crate::support::TestApp::start_with(backend, |c| c.webhook_allow_private = true).await
                else {
                    return;
                };
                $body
            }

            crate::on_both_backends!(run);
        }
    };
}

/// Binds 127.0.0.1 on a port the kernel picks, for a child `hubgate serve` to be handed
/// with [`hand_over`]: its port is known before the child starts (base URLs, OpenID
/// redirects, nginx's upstreams need it) and stays bound from here on, so no other
/// process can take it in between.
pub fn listener() -> std::io::Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Hands `listener` to the child `cmd` starts as systemd's socket activation does: fd 3
/// and `LISTEN_FDS=1`; `hubgate serve` then serves on it and binds nothing. command-fds
/// does the dup2 between fork and exec (the unsafe part is in that crate: this one
/// forbids unsafe code); `cmd` owns our copy of the socket and closes it when dropped
/// after the spawn, so the socket is the child's alone (a killed child's port refuses
/// connections). `LISTEN_PID` stays unset: the child's pid is unknown before the fork,
/// and without it the sockets are for whoever reads them. Call it after any `env_clear`.
pub fn hand_over(cmd: &mut std::process::Command, listener: std::net::TcpListener) -> std::io::Result<()> {
    use command_fds::{CommandFdExt, FdMapping};
    cmd.fd_mappings(vec![FdMapping { parent_fd: listener.into(), child_fd: 3 }]).map_err(std::io::Error::other)?;
    cmd.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
    Ok(())
}

/// A port for a server that binds it itself (nginx, Dovecot: no socket can be handed
/// to them), only through [`start_on_free_ports`], which starts again on other ports
/// when another process took one in between. Chosen below the kernel's ephemeral range
/// (32768 and up), so no `bind(0)` of another test (an SMTP server, a receiver) takes
/// it; other processes still may.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 1_000) as u16 * 7;
    for _ in 0..12_000 {
        // 20000..32000: below the ephemeral range.
        let port = 20_000 + offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range")
}

/// Why a server that binds its own ports is not up.
pub enum NotUp {
    /// It exited because a port was in use (its log, for the final message).
    PortTaken(String),
    /// Anything else: no point trying other ports.
    Failed(String),
}

impl std::fmt::Display for NotUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotUp::PortTaken(log) => write!(f, "a port was in use:\n{log}"),
            NotUp::Failed(log) => write!(f, "{log}"),
        }
    }
}

/// How many times [`start_on_free_ports`] starts a server on new ports.
pub const PORT_TRIES: usize = 5;

/// Starts a server that binds its own ports on `n` ports picked for it, and again on
/// new ones while `start` reports [`NotUp::PortTaken`] (another process took one
/// between the pick and the server's bind), [`PORT_TRIES`] times at most.
pub fn start_on_free_ports<T>(what: &str, n: usize, mut start: impl FnMut(&[u16]) -> Result<T, NotUp>) -> T {
    let mut taken = Vec::new();
    for _ in 0..PORT_TRIES {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        match start(&ports) {
            Ok(v) => return v,
            Err(NotUp::PortTaken(log)) => taken.push(format!("ports {ports:?}:\n{log}")),
            Err(NotUp::Failed(log)) => panic!("{what} did not start on ports {ports:?}:\n{log}"),
        }
    }
    panic!("{what}: another process held one of its ports on each of {PORT_TRIES} tries:\n{}", taken.join("\n"))
}

/// Waits until `ours()` says the server `child` answers on its ports (a check that
/// only it can pass: another process on the port would answer too). If the child
/// exits first, [`NotUp::PortTaken`] when `log()` says a port was in use, else
/// [`NotUp::Failed`]; after 60 s, `Failed`.
pub fn wait_for_own_server(
    child: &mut std::process::Child,
    mut ours: impl FnMut() -> bool,
    log: impl Fn() -> String,
) -> Result<(), NotUp> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = format!("{status}\n{}", log());
            return Err(if log.contains("Address already in use") {
                NotUp::PortTaken(log)
            } else {
                NotUp::Failed(log)
            });
        }
        if ours() {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            return Err(NotUp::Failed(format!("not up after 60 s\n{}", log())));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether what answers on 127.0.0.1:`port` (after we send `request`) says `token`
/// within a second: the unique token in a test server's configuration tells it from
/// another process that took the port.
pub fn answers_with(port: u16, request: &[u8], token: &str) -> bool {
    use std::io::{Read, Write};
    let second = std::time::Duration::from_secs(1);
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), second) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(second));
    if s.write_all(request).is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&got).contains(token) {
            return true;
        }
    }
    false
}

/// A token no other process has: marks a test server's answers as its own.
pub fn instance_token() -> String {
    format!("hubgate-test-{}-{:016x}", std::process::id(), rand::random::<u64>())
}

/// A child process that is killed when the test ends, however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `f` gives a value; fails the test after a minute (a deadline, not a
/// measurement: every wait here normally ends in well under a second).
pub async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The table row (`<tr …>…</tr>`) of a list that links to `href="{prefix}{id}"`; empty
/// when the list has no such row.
pub fn list_row<'a>(body: &'a str, prefix: &str, id: i64) -> &'a str {
    let link = format!("href=\"{prefix}{id}\"");
    let Some(at) = body.find(&link) else { return "" };
    let start = body[..at].rfind("<tr").unwrap_or(at);
    let end = body[at..].find("</tr>").map(|e| at + e).unwrap_or(body.len());
    &body[start..end]
}

/// The ids a page links to as `href="{prefix}{id}"`, in page order, each once: the rows
/// of a list (`/requests/`, `/mail/`, `/pyc/`, `/merchants/`).
pub fn linked_ids(body: &str, prefix: &str) -> Vec<i64> {
    let marker = format!("href=\"{prefix}");
    let mut ids = Vec::new();
    for part in body.split(&marker).skip(1) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        // Only a link to exactly the row (`/requests/12"`), not `/requests/12/accept`.
        if let (Ok(id), Some('"')) = (digits.parse::<i64>(), part.chars().nth(digits.len()))
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// The flash messages of one kind (`success`, `error`, `info`) a page shows.
pub fn flashes(page: &Page, kind: &str) -> Vec<String> {
    let marker = format!("<div class=\"flash flash-{kind}\" role=\"status\">");
    page.body.split(&marker).skip(1).filter_map(|p| p.split("</div>").next()).map(str::to_string).collect()
}

/// The audit rows (action, before, after) of one entity, oldest first.
pub fn audit_trail(app: &TestApp, entity: &str, id: i64) -> Vec<(String, String, String)> {
    use diesel::{ExpressionMethods, QueryDsl};
    use hubgate::db::schema::audit_log;
    app.with_conn(|c| {
        audit_log::table
            .filter(audit_log::entity_type.eq(entity))
            .filter(audit_log::entity_id.eq(id.to_string()))
            .order(audit_log::id.asc())
            .select((audit_log::action, audit_log::before_json, audit_log::after_json))
            .load::<(String, Option<String>, Option<String>)>(c)
    })
    .unwrap_or_else(|e| panic!("audit of {entity} {id}: {e}"))
    .into_iter()
    .map(|(a, b, f)| (a, b.unwrap_or_default(), f.unwrap_or_default()))
    .collect()
}

/// The part of `body` from the first `open` to the `close` after it ("" without `open`).
pub fn between<'a>(body: &'a str, open: &str, close: &str) -> &'a str {
    let Some(start) = body.find(open) else { return "" };
    let end = body[start..].find(close).map_or(body.len(), |e| start + e);
    &body[start..end]
}

/// The text of each cell of each row of the first table on a page, tags stripped:
/// what a reader of the table sees.
pub fn table_rows(body: &str) -> Vec<Vec<String>> {
    between(body, "<tbody>", "</tbody>")
        .split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    // After the opening tag's attributes, up to the cell's end.
                    let inner = cell.split_once('>').map_or("", |(_, rest)| rest);
                    text_of(inner.split("</td>").next().unwrap_or(""))
                })
                .collect()
        })
        .collect()
}

/// Markup without its tags, whitespace collapsed.
pub fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where a list page's "Trang sau ›" (or "‹ Trang trước") link leads, as a browser reads
/// the escaped `href`.
pub fn pager_link(page: &Page, label: &str) -> Option<String> {
    let end = page.body.find(&format!("\">{label}</a>"))?;
    let start = page.body[..end].rfind("href=\"")? + "href=\"".len();
    Some(page.body[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

/// Every row id of a paged list, following its "Trang sau ›" links from `first`;
/// also each page's count, to see the page size.
pub async fn all_pages(b: &Browser, first: &str, prefix: &str) -> (Vec<i64>, Vec<usize>) {
    let (mut ids, mut sizes, mut next) = (Vec::new(), Vec::new(), Some(first.to_string()));
    while let Some(path) = next {
        let page = b.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let found = linked_ids(&page.body, prefix);
        sizes.push(found.len());
        ids.extend(found);
        next = pager_link(&page, "Trang sau ›");
        assert!(sizes.len() < 100, "a pager that never ends at {path}");
    }
    (ids, sizes)
}
