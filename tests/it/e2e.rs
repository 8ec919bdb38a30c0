//! End to end in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver) from Rust, against the real `hubgate` binary on
//! 127.0.0.1 with a fresh database, a real SMTP server for what it sends and the
//! token-authenticated mail endpoint for what partners send.
//!
//! Each step is done by the role that does it at work, in its own browser
//! profile, by typing and clicking. Screenshots of every step land in
//! `target/e2e/<backend>/` (kept by CI); the technician's checklist is also shot
//! at a phone's width.
//!
//! Without chromedriver the test says so and passes, except under `CI=1`, where a
//! missing browser is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hubgate::db::Backend;

use crate::support::poll;

const PASSWORD: &str = "mat-khau-e2e-2026";
const INBOUND_TOKEN: &str = "e2e-inbound-token";

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var(env).map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(default));
    path.exists().then_some(path)
}

pub(crate) async fn wait_until_up(url: &str, what: &str, log: &Path) {
    // A timeout per request: a handed-over socket that nobody accepts on would take the
    // connection and never answer.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("http client: {e}"));
    let started = Instant::now();
    loop {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not come up at {url}:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where a run keeps its screenshots and downloads.
struct Shots {
    dir: PathBuf,
    n: std::sync::atomic::AtomicUsize,
}

/// One person's browser.
struct Tab {
    c: Client,
    base: String,
    shots: std::sync::Arc<Shots>,
}

impl Tab {
    async fn open(driver: &str, base: &str, shots: &std::sync::Arc<Shots>, chromium: &Path) -> Tab {
        let downloads = shots.dir.join("downloads");
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // The machine has no internet: without the background-networking flags
                // Chromium keeps trying Google's hosts.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--lang=vi-VN",
                    "--window-size=1280,900"
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false
                }
            }
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(driver)
            .await
            .unwrap_or_else(|e| panic!("chromedriver session: {e}"));
        Tab { c, base: base.to_string(), shots: shots.clone() }
    }

    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.c.current_url().await.map(|u| u.path().to_string()).unwrap_or_default()
    }

    async fn find(&self, css: &str) -> Element {
        match self.c.find(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => panic!("no `{css}` on {}: {e}\n{}", self.path().await, self.c.source().await.unwrap_or_default()),
        }
    }

    async fn text(&self) -> String {
        self.find("body").await.text().await.unwrap_or_default()
    }

    async fn see(&self, what: &str) {
        let text = self.text().await;
        if !text.contains(what) {
            self.shot("FAILED").await;
        }
        assert!(text.contains(what), "expected `{what}` on {}:\n{text}", self.path().await);
    }

    /// Waits for `what` on a page that updates itself (a progress page reloading).
    async fn see_soon(&self, what: &str) {
        crate::support::poll(&format!("`{what}` on the page"), async || self.text().await.contains(what).then_some(()))
            .await;
    }

    /// Types into a field, replacing what it held.
    async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field.send_keys(value).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The value a field holds now (prefilled drafts).
    async fn value(&self, css: &str) -> String {
        self.find(css).await.prop("value").await.ok().flatten().unwrap_or_default()
    }

    /// Clicks what loads no page (a checkbox, a download).
    async fn tap(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("tap {css}: {e}"));
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.submit(&el, css).await;
    }

    /// Clicks something that loads a new page, and waits for that page: a click
    /// returns before the navigation it starts has replaced the old document.
    async fn submit(&self, el: &Element, what: &str) {
        let old = self.find("html").await;
        el.click().await.unwrap_or_else(|e| panic!("click {what}: {e}"));
        let started = Instant::now();
        while old.tag_name().await.is_ok() {
            assert!(started.elapsed() < Duration::from_secs(30), "clicking {what} loaded no page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        while self.c.execute("return document.readyState", vec![]).await.ok() != Some(serde_json::json!("complete")) {
            assert!(started.elapsed() < Duration::from_secs(30), "the page after {what} never finished loading");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Clicks the link or button a person would read.
    async fn press(&self, label: &str) {
        let xpath = format!(
            "//a[normalize-space()='{label}'] | //button[normalize-space()='{label}'] | //input[@type='submit' and @value='{label}']"
        );
        let el = match self.c.find(Locator::XPath(&xpath)).await {
            Ok(el) => el,
            Err(e) => panic!("no `{label}` to press on {}: {e}\n{}", self.path().await, self.text().await),
        };
        self.submit(&el, label).await;
    }

    async fn shot(&self, name: &str) {
        let n = self.shots.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let png = self.c.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
        let file = self.shots.dir.join(format!("{n:02}-{name}.png"));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    async fn login(&self, email: &str, password: &str) {
        self.go("/login").await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", password).await;
        self.press("Đăng nhập").await;
        assert_ne!(self.path().await, "/login", "{email} could not log in: {}", self.text().await);
    }

    /// The state badge of a request or PYC page: what the page says happened (the step
    /// bar beside it names every state on every page).
    async fn badge(&self) -> String {
        self.find(".badge-state").await.text().await.unwrap_or_default()
    }

    /// The id at the end of the current path (`/requests/7` → 7).
    async fn id(&self) -> i64 {
        let path = self.path().await;
        path.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {path}"))
    }
}

/// Waits for the SMTP server to receive a mail containing `needle`; checks that it
/// answers the partner's opening mail (so it lands in the partner's thread).
async fn reply_in_partner_thread(inbox: &crate::smtp::Inbox, what: &str, needle: &str) -> Vec<u8> {
    let raw =
        poll(what, async || inbox.received().into_iter().find(|m| String::from_utf8_lossy(m).contains(needle))).await;
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap_or_else(|| panic!("{what}: unparsable"));
    assert_eq!(parsed.in_reply_to().as_text(), Some("A01.outlook@momo.vn"), "{what} is sent in the partner's thread");
    raw
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail").join(name)
}

#[actix_web::test]
async fn journey_in_chromium_sqlite() {
    journey(Backend::Sqlite).await;
}

#[actix_web::test]
async fn journey_in_chromium_postgres() {
    journey(Backend::Postgres).await;
}

/// The newcomer's first ten minutes: `serve --demo`, then every demo account opens
/// every page of its menu and the first item listed there. None of them may end on
/// an error page, each has a heading, and each is kept as a screenshot.
#[actix_web::test]
async fn demo_desk_every_screen_in_chromium() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(rig) = Rig::start("demo", Backend::Sqlite, &["--demo"]).await else { return };
    let mut seen = 0;
    let staff =
        hubgate::demo::USERS.iter().map(|(email, name, role, password)| (*email, *name, role.code(), *password));
    let merchants =
        hubgate::demo::MERCHANTS.iter().map(|(email, name, _, password)| (*email, *name, "merchant", *password));
    for (email, name, who, password) in staff.chain(merchants) {
        let tab = rig.tab().await;
        tab.login(email, password).await;
        // Every page below is checked to be theirs: their name in the user menu.
        let signed_in = async |tab: &Tab, path: &str| {
            let shown = tab.find("span.who").await.text().await.unwrap_or_default();
            assert_eq!(shown, name, "{email} on {path} is not signed in as themself");
        };
        signed_in(&tab, "the landing page").await;
        let mut items_opened = 0;
        let mut menu = Vec::new();
        for a in tab.c.find_all(Locator::Css("nav.mainnav a")).await.unwrap_or_default() {
            menu.push(a.attr("href").await.ok().flatten().unwrap_or_default());
        }
        assert!(menu.len() >= 2, "{email} has a menu: {menu:?}");
        for href in menu {
            for depth in 0..2 {
                if depth == 0 {
                    tab.go(&href).await;
                } else {
                    // The first thing listed on the page (a request, a PYC, a mail...).
                    // (for merchants: a business's card).
                    let listed = "main table tbody a[href^='/'], main a.tile[href^='/']";
                    // Pages without a list (a form, a settings page) have nothing to open;
                    // that every account opened some item is checked below.
                    let Ok(first) = tab.c.find(Locator::Css(listed)).await else { break };
                    tab.submit(&first, "the first listed item").await;
                    items_opened += 1;
                }
                let path = tab.path().await;
                assert!(!path.starts_with("/login"), "{email} was sent to sign in again from {href}");
                let errors = tab.c.find_all(Locator::Css(".error-card")).await.unwrap_or_default();
                assert!(errors.is_empty(), "{email} meets an error on {path}: {}", tab.text().await);
                let heading = tab.find("h1").await.text().await.unwrap_or_default();
                assert!(!heading.trim().is_empty(), "{path} has a heading");
                signed_in(&tab, &path).await;
                let name = format!("{who}{}", path.replace('/', "-"));
                tab.shot(&name).await;
                seen += 1;
            }
        }
        if who == "merchant" {
            // Every tab of the first business.
            tab.go("/app").await;
            {
                let card = tab.find("main a.tile").await;
                tab.submit(&card, "the first business").await;
                let mut tabs = Vec::new();
                for a in tab.c.find_all(Locator::Css("nav.tabs a")).await.unwrap_or_default() {
                    tabs.push(a.attr("href").await.ok().flatten().unwrap_or_default());
                }
                // Owners and managers also have the API tab.
                assert_eq!(tabs.len(), 8, "{email}: a business has eight tabs");
                for href in tabs {
                    tab.go(&href).await;
                    let errors = tab.c.find_all(Locator::Css(".error-card")).await.unwrap_or_default();
                    assert!(errors.is_empty(), "{email} meets an error on {href}: {}", tab.text().await);
                    assert!(tab.c.find(Locator::Css("h1")).await.is_ok(), "{href} has a heading");
                    signed_in(&tab, &href).await;
                    tab.shot(&format!("merchant{}", href.replace('/', "-"))).await;
                    seen += 1;
                }
            }
        }
        assert!(items_opened >= 1, "{email} found nothing listed to open on any menu page");
        let _ = tab.c.close().await;
    }
    assert!(seen >= 40, "every role's screens were opened ({seen})");
}

/// The two journeys take turns: ten Chromium processes at once on a two-core
/// runner would only make both slow.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The real program, a WebDriver server and an SMTP server, all on 127.0.0.1.
struct Rig {
    base: String,
    driver: String,
    chromium: PathBuf,
    shots: std::sync::Arc<Shots>,
    inbox: crate::smtp::Inbox,
    tmp: tempfile::TempDir,
    database_url: String,
    // Dropped (killed) after the browsers that use them.
    _server: crate::support::KillOnDrop,
    _driver: crate::support::KillOnDrop,
    // After the server: a PostgreSQL database is dropped once nothing uses it.
    _db: crate::support::TestDb,
}

impl Rig {
    /// `None` when this machine cannot run it (no browser, or no PostgreSQL).
    async fn start(name: &str, backend: Backend, serve_args: &[&str]) -> Option<Rig> {
        let (listener, port) = crate::support::listener().unwrap_or_else(|e| panic!("bind: {e}"));
        Self::start_with(name, backend, serve_args, (listener, port), Vec::new()).await
    }

    /// As [`Rig::start`], serving on a socket bound beforehand (its port is in URLs
    /// made before the start) with extra environment for the program.
    async fn start_with(
        name: &str,
        backend: Backend,
        serve_args: &[&str],
        (listener, port): (std::net::TcpListener, u16),
        env: Vec<(String, String)>,
    ) -> Option<Rig> {
        let (Some(driver_bin), Some(chromium)) =
            (tool("HUBGATE_CHROMEDRIVER", "/usr/bin/chromedriver"), tool("HUBGATE_CHROMIUM", "/usr/bin/chromium"))
        else {
            crate::support::skipped(
                "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)",
            );
            return None;
        };
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (database_url, db) = match backend {
            Backend::Sqlite => {
                (format!("sqlite://{}/hubgate.db", tmp.path().display()), crate::support::TestDb::Sqlite)
            }
            Backend::Postgres => {
                let admin_url = crate::support::pg_admin_url()?;
                let (url, name) = crate::support::fresh_pg_database(&admin_url);
                (url, crate::support::TestDb::Pg { admin_url, name })
            }
        };
        let shots = std::sync::Arc::new(Shots {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e").join(name),
            n: Default::default(),
        });
        let _ = std::fs::remove_dir_all(&shots.dir);
        std::fs::create_dir_all(shots.dir.join("downloads")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let log = |name: &str| {
            let path = tmp.path().join(name);
            (std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}")), path)
        };

        let (smtp_port, inbox, _smtp) = crate::smtp::start(0).await;
        // Port 0: chromedriver binds a free port itself and says which; no port is picked
        // here and bound later by a process that may lose it to another.
        let (driver_log, driver_log_path) = log("chromedriver.log");
        let mut driver_proc = crate::support::KillOnDrop(
            Command::new(driver_bin)
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(driver_log)
                .spawn()
                .unwrap_or_else(|e| panic!("chromedriver: {e}")),
        );
        let driver_out = driver_proc.0.stdout.take().unwrap_or_else(|| panic!("chromedriver's stdout"));
        let driver_port = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(driver_out).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
                l.split_once("started successfully on port ")?.1.trim_end_matches('.').trim().parse::<u16>().ok()
            });
            // Kept draining, so that chromedriver never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            port
        })
        .join()
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!("chromedriver named no port:\n{}", std::fs::read_to_string(&driver_log_path).unwrap_or_default())
        });
        let driver = format!("http://127.0.0.1:{driver_port}");

        // The real program, as it is deployed, on the socket bound here: the port in its
        // base URL (in mails, in the OpenID provider's redirects) is ours from the start.
        let base = format!("http://127.0.0.1:{port}");
        let (server_log, server_log_path) = log("hubgate.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubgate"));
        cmd.arg("serve")
            .args(serve_args)
            .env("DATABASE_URL", &database_url)
            .env("HUBGATE_DATA_DIR", tmp.path())
            .env("HUBGATE_BASE_URL", &base)
            .env("HUBGATE_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
            .env("HUBGATE_INBOUND_TOKEN", INBOUND_TOKEN)
            .env("HUBGATE_WORKER_POLL_MS", "50")
            .env("HUBGATE_LOG", "warn")
            .envs(env)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(server_log);
        crate::support::hand_over(&mut cmd, listener).unwrap_or_else(|e| panic!("hand over the socket: {e}"));
        let server = crate::support::KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("hubgate serve: {e}")));
        // Our copy of the socket closes: it is the child's alone.
        drop(cmd);
        wait_until_up(&format!("{driver}/status"), "chromedriver", &driver_log_path).await;
        wait_until_up(&format!("{base}/healthz"), "hubgate", &server_log_path).await;
        Some(Rig {
            base,
            driver,
            chromium,
            shots,
            inbox,
            tmp,
            database_url,
            _server: server,
            _driver: driver_proc,
            _db: db,
        })
    }

    /// A new person at a new browser.
    async fn tab(&self) -> Tab {
        Tab::open(&self.driver, &self.base, &self.shots, &self.chromium).await
    }
}

async fn journey(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(rig) = Rig::start(&format!("{backend:?}").to_lowercase(), backend, &[]).await else { return };
    let (base, inbox, tmp) = (&rig.base, &rig.inbox, &rig.tmp);

    // First run: the administrator sets up the desk and creates one account per role.
    let admin = rig.tab().await;
    admin.go("/").await;
    assert_eq!(admin.path().await, "/setup", "a fresh install asks for its first administrator");
    admin.fill("input[name=email]", "admin@ipos.vn").await;
    admin.fill("input[name=name]", "Quản trị viên").await;
    admin.fill("input[name=password]", PASSWORD).await;
    admin.fill("input[name=confirm]", PASSWORD).await;
    admin.shot("admin-setup").await;
    admin.press("Tạo quản trị viên").await;
    for (email, name, role) in [
        ("sale@ipos.vn", "Nguyễn Thị Kinh Doanh", "sale"),
        ("leader@ipos.vn", "Trần Văn Trưởng Nhóm", "leader"),
        ("tech@ipos.vn", "Lê Văn Kỹ Thuật", "technician"),
        ("ketoan@ipos.vn", "Phạm Thị Kế Toán", "accountant"),
    ] {
        admin.go("/admin/users/new").await;
        admin.fill("input[name=email]", email).await;
        admin.fill("input[name=name]", name).await;
        admin.fill("input[name=password]", PASSWORD).await;
        admin.tap(&format!("input[name=role_{role}]")).await;
        admin.press("Tạo tài khoản").await;
        admin.see(email).await;
    }
    admin.go("/admin/users").await;
    admin.shot("admin-users").await;

    // B1: sales uploads the partner's mail and opens the request from it.
    let sale = rig.tab().await;
    sale.login("sale@ipos.vn", PASSWORD).await;
    sale.go("/mail/upload").await;
    let a01 = corpus("a01-momo-request-outlook.eml");
    sale.find("input[type=file][name=files]").await.send_keys(&a01.display().to_string()).await.unwrap_or_else(|e| {
        panic!("choose file: {e}");
    });
    sale.press("Tải lên và xử lý").await;
    sale.see("a01-momo-request-outlook.eml").await;
    sale.shot("sale-upload-mail").await;
    sale.click("table a[href^='/mail/']").await;
    sale.see("MoMo").await;
    sale.press("Mở yêu cầu kết nối từ thư này").await;
    for (name, value) in [
        ("merchant_name", "Phở Thìn Lò Đúc"),
        ("point_name", "Phở Thìn - 13 Lò Đúc"),
        ("point_address", "13 Lò Đúc, Hà Nội"),
        ("point_contact", "Chị Lan"),
        ("point_phone", "0912345678"),
    ] {
        if sale.value(&format!("[name={name}]")).await.trim().is_empty() {
            sale.fill(&format!("[name={name}]"), value).await;
        }
    }
    sale.shot("sale-new-request").await;
    sale.press("Mở yêu cầu (B1)").await;
    let request = sale.id().await;
    assert_eq!(sale.path().await, format!("/requests/{request}"));
    sale.see("Phở Thìn").await;
    sale.shot("sale-request-opened").await;

    // The merchant's and the MoMo leader's confirmations arrive by mail.
    let http = reqwest::Client::new();
    for file in ["a02-merchant-confirm-gmail.eml", "a03-momo-leader-approve.eml"] {
        let raw = std::fs::read(corpus(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let resp = http
            .post(format!("{base}/inbound/mail"))
            .bearer_auth(INBOUND_TOKEN)
            .body(raw)
            .send()
            .await
            .unwrap_or_else(|e| panic!("deliver {file}: {e}"));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let log = std::fs::read_to_string(tmp.path().join("hubgate.log")).unwrap_or_default();
        assert!(status.is_success(), "{file}: {status} {body}\n{log}");
    }

    // A partner's photo of the point arrives by mail: the browser draws the preview.
    let resp = http
        .post(format!("{base}/inbound/mail"))
        .bearer_auth(INBOUND_TOKEN)
        .body(crate::desk::mail_with_files("e2e-files"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("deliver the mail with files: {e}"));
    assert!(resp.status().is_success(), "{}", resp.status());
    sale.go("/mail?q=hop%20dong").await;
    sale.click("table a[href^='/mail/']").await;
    let drawn = "const i = document.querySelector('img.attachment-preview'); i.scrollIntoView(); \
                 return i.complete ? i.naturalWidth : 0";
    let started = Instant::now();
    loop {
        let width = sale.c.execute(drawn, vec![]).await.ok().and_then(|v| v.as_i64()).unwrap_or(0);
        if width > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the attached PNG was not drawn");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sale.shot("sale-mail-attachment-preview").await;
    // The PDF opens in Chromium's own viewer (an extension frame, seen through the
    // browser's debugging endpoint): a sandboxed frame would show a blocked page instead.
    let debugger = sale
        .c
        .capabilities()
        .and_then(|caps| caps.get("goog:chromeOptions")?.get("debuggerAddress")?.as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("chromedriver names the browser's debugging address"));
    let started = Instant::now();
    loop {
        let targets: serde_json::Value = match http.get(format!("http://{debugger}/json/list")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let urls: Vec<String> = targets
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("url")?.as_str().map(str::to_string))
            .collect();
        let viewer = urls.iter().any(|u| u.starts_with("chrome-extension://mhjfbmdgcfjbbpaeojofohoefgiehjai/"));
        let pdf = urls.iter().any(|u| u.contains("/attachments/") && u.ends_with("/view"));
        if viewer && pdf {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Chromium's PDF viewer did not open the attachment: {urls:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B2: with both confirmations in, sales sends the acceptance mail.
    sale.go(&format!("/requests/{request}")).await;
    sale.shot("sale-confirmations-in").await;
    sale.press("Soạn mail chấp nhận mở cổng (B2)").await;
    assert!(!sale.value("input[name=to]").await.is_empty(), "the acceptance is addressed to the partner");
    sale.shot("sale-acceptance-draft").await;
    sale.press("Chấp nhận và gửi mail (B2)").await;
    let state = sale.badge().await;
    assert!(state.ends_with("Đã chấp nhận"), "the request is accepted: {state}");
    reply_in_partner_thread(inbox, "the acceptance mail", "A01.outlook@momo.vn").await;

    // B3: sales drafts the PYC, the leader reviews it, sales creates it.
    sale.press("Lập PYC (B3)").await;
    for name in ["customer_name", "contract_code", "brand", "location"] {
        assert!(!sale.value(&format!("[name={name}]")).await.is_empty(), "{name} is prefilled");
    }
    sale.shot("sale-pyc-draft").await;
    sale.press("Lưu PYC nháp").await;
    let pyc = sale.id().await;
    assert_eq!(sale.path().await, format!("/pyc/{pyc}"));
    assert_eq!(sale.badge().await, "Nháp");

    let leader = rig.tab().await;
    leader.login("leader@ipos.vn", PASSWORD).await;
    leader.go(&format!("/pyc/{pyc}")).await;
    leader.click(&format!("form[action='/pyc/{pyc}/review'] button")).await;
    assert_eq!(leader.badge().await, "Đã xem lại (B7)");
    leader.shot("leader-reviewed-pyc").await;
    sale.go(&format!("/pyc/{pyc}")).await;
    sale.click(&format!("form[action='/pyc/{pyc}/create'] button")).await;
    assert_eq!(sale.badge().await, "Đã tạo (B8)");
    sale.shot("sale-pyc-created").await;

    // B4: the technician works the checklist on a phone.
    let tech = rig.tab().await;
    tech.c.set_window_size(390, 844).await.unwrap_or_else(|e| panic!("phone size: {e}"));
    tech.login("tech@ipos.vn", PASSWORD).await;
    tech.go(&format!("/pyc/{pyc}")).await;
    tech.shot("technician-checklist-phone").await;
    let open_item = format!("form[action^='/pyc/{pyc}/items/'] button.tick:not(.done)");
    let mut ticked = 0;
    while let Ok(item) = tech.c.find(Locator::Css(&open_item)).await {
        tech.submit(&item, "a checklist item").await;
        ticked += 1;
        assert!(ticked < 50, "the checklist never ends");
    }
    assert!(ticked >= 1, "there was a checklist to work");
    // Every item now shows its tick, after a fresh load (kept, not just drawn).
    tech.go(&format!("/pyc/{pyc}")).await;
    let done = format!("form[action^='/pyc/{pyc}/items/'] button.tick.done");
    assert_eq!(tech.c.find_all(Locator::Css(&done)).await.map(|v| v.len()).unwrap_or(0), ticked, "ticks kept");
    tech.fill("input[name=pos_parent]", "PP-7788").await;
    tech.fill("input[name=pos_id]", "POS-123456").await;
    tech.fill("input[name=key1]", "K1-SECRET-abc").await;
    tech.fill("input[name=key2]", "K2-SECRET-xyz").await;
    tech.press("Lưu dữ liệu").await;
    // Saved: a fresh load shows the ids, and the keys only as sealed.
    tech.go(&format!("/pyc/{pyc}")).await;
    assert_eq!(tech.value("input[name=pos_id]").await, "POS-123456");
    assert_eq!(tech.value("input[name=pos_parent]").await, "PP-7788");
    tech.see("•••••• (đã mã hóa)").await;
    // The proof of connection is a real PNG: this very screen.
    let proof = tmp.path().join("ket-noi-thanh-cong.png");
    std::fs::write(&proof, tech.c.screenshot().await.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    tech.find("input[type=file][name=screenshot]").await.send_keys(&proof.display().to_string()).await.unwrap_or_else(
        |e| {
            panic!("choose screenshot: {e}");
        },
    );
    tech.press("Tải ảnh lên").await;
    // The uploaded screenshot is shown on the page, drawn from what the server kept.
    let drawn = "const i = document.querySelector('img.shot'); return i && i.complete ? i.naturalWidth : 0";
    let width = poll("the uploaded screenshot drawn", async || {
        tech.c.execute(drawn, vec![]).await.ok().and_then(|v| v.as_i64()).filter(|w| *w > 0)
    })
    .await;
    let png = std::fs::read(&proof).unwrap_or_default();
    let taken = png.get(16..20).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]])).unwrap_or(0);
    assert_eq!(width, i64::from(taken), "the screenshot as taken (its PNG header's width)");
    // And byte for byte what was uploaded (a cut-off PNG still has its header's width):
    // read back in the technician's own session, its length and byte sum.
    let read_back = "const done = arguments[arguments.length - 1]; \
                     fetch(document.querySelector('img.shot').src).then(r => r.arrayBuffer()) \
                     .then(b => { const a = new Uint8Array(b); let s = 0; for (const x of a) s += x; done([a.length, s]); })";
    let served = tech.c.execute_async(read_back, vec![]).await.unwrap_or_else(|e| panic!("read the screenshot: {e}"));
    let sum: u64 = png.iter().map(|b| u64::from(*b)).sum();
    assert_eq!(served, serde_json::json!([png.len(), sum]), "the screenshot served is the one uploaded");
    tech.shot("technician-checklist-done-phone").await;
    tech.click(&format!("form[action='/pyc/{pyc}/deployed'] button")).await;
    assert_eq!(tech.badge().await, "Đã triển khai");
    tech.see("POS-123456").await;
    assert!(!tech.text().await.contains("K1-SECRET-abc"), "keys stay hidden until asked for");
    tech.press("Hiện").await;
    tech.see("K1-SECRET-abc").await;
    tech.c.set_window_size(1280, 900).await.unwrap_or_else(|e| panic!("desk size: {e}"));
    tech.shot("technician-deployed").await;

    // B5: the reply to the partner goes out with the POS ids and the screenshot.
    tech.press("Gửi lại thông tin cho đối tác (B5)").await;
    assert!(tech.value("textarea[name=body]").await.contains("POS-123456"), "the draft carries the POS id");
    tech.shot("technician-reply-draft").await;
    tech.press("Gửi (B5)").await;
    let reply = reply_in_partner_thread(inbox, "the partner reply", "PP-7788").await;
    let parsed = mail_parser::MessageParser::default().parse(&reply).unwrap_or_else(|| panic!("unparsable"));
    assert_eq!(parsed.attachment_count(), 1, "the connection screenshot is attached");

    // The accountant downloads the month's workbook and records the 0 đ invoice.
    let accountant = rig.tab().await;
    accountant.login("ketoan@ipos.vn", PASSWORD).await;
    // The month the point went live, from its row: a run across midnight at a month's
    // end looks where the report files it.
    let deployed_at: Option<chrono::NaiveDateTime> = {
        use diesel::prelude::*;
        let pool = hubgate::db::pool(&rig.database_url, 1).unwrap_or_else(|e| panic!("{e:#}"));
        let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
        use hubgate::db::schema::pycs;
        pycs::table.find(pyc).select(pycs::deployed_at).first(&mut conn).unwrap_or_else(|e| panic!("{e}"))
    };
    let deployed_at = deployed_at.unwrap_or_else(|| panic!("PYC {pyc} has no deployment time"));
    let month = hubgate::fmt::local_date(deployed_at).format("%Y-%m").to_string();
    accountant.go(&format!("/reports?month={month}")).await;
    accountant.see("POS-123456").await;
    accountant.shot("accountant-month").await;
    accountant.tap(&format!("a[href='/reports/{month}/xlsx']")).await;
    let downloads = rig.shots.dir.join("downloads");
    // Polled until the file reads as a whole workbook: Chromium may still be writing it.
    let mut book: calamine::Xlsx<_> = poll("the downloaded workbook", async || {
        let path = std::fs::read_dir(&downloads)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "xlsx"))?;
        calamine::open_workbook(&path).ok()
    })
    .await;
    let sheets = calamine::Reader::sheet_names(&book);
    let mut found = false;
    for name in sheets {
        let range = calamine::Reader::worksheet_range(&mut book, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        found |= range.rows().any(|r| {
            r.iter().any(|c| matches!(c, calamine::Data::String(s) if s == "POS-123456"))
                && r.iter().any(|c| matches!(c, calamine::Data::String(s) if s == "PP-7788"))
        });
    }
    assert!(found, "the deployed point is a row of the workbook");

    accountant.go(&format!("/pyc/{pyc}")).await;
    accountant.fill("input[name=number]", "0000123").await;
    let date = accountant.find("input[name=date]").await;
    let today = hubgate::fmt::local_date(hubgate::db::now()).format("%Y-%m-%d").to_string();
    accountant
        .c
        .execute("arguments[0].value = arguments[1]", vec![serde_json::json!(date), serde_json::json!(today)])
        .await
        .unwrap_or_else(|e| panic!("set date: {e}"));
    accountant.press("Ghi nhận hóa đơn 0 đ").await;
    accountant.see("0000123").await;
    accountant.shot("accountant-invoice").await;
    accountant.go(&format!("/requests/{request}")).await;
    let state = accountant.badge().await;
    assert!(state.ends_with("Đã xuất hóa đơn 0 đ"), "the request is invoiced: {state}");

    // A wrong role meets a forbidden page, not the data.
    tech.go("/reports").await;
    tech.see("Bạn không có quyền truy cập trang này.").await;
    tech.shot("technician-forbidden").await;

    // A form that lost its CSRF token is refused and changes nothing.
    sale.go(&format!("/requests/{request}")).await;
    sale.c
        .execute(
            "document.querySelectorAll('form[action$=\"/comments\"] input[name=_csrf]').forEach(e => e.remove())",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("strip token: {e}"));
    sale.fill("form[action$='/comments'] textarea[name=body]", "Bình luận giả mạo").await;
    sale.click("form[action$='/comments'] button[type=submit]").await;
    sale.see("Biểu mẫu đã hết hạn hoặc không hợp lệ").await;
    sale.shot("sale-csrf-refused").await;
    sale.go(&format!("/requests/{request}")).await;
    assert!(!sale.text().await.contains("Bình luận giả mạo"), "the forged comment was not saved");

    for tab in [admin, sale, leader, tech, accountant] {
        let _ = tab.c.close().await;
    }
}

/// The first mail the SMTP server received for `to` that holds `path`: the link in it,
/// as a path on the app (read from the decoded text part, as a mail reader shows it).
async fn mailed_link(inbox: &crate::smtp::Inbox, base: &str, to: &str, path: &str) -> String {
    poll(&format!("the mail to {to}"), async || {
        inbox.received().into_iter().find_map(|raw| {
            let parsed = mail_parser::MessageParser::default().parse(&raw)?;
            let addressed = parsed.to().is_some_and(|a| a.iter().any(|x| x.address().is_some_and(|m| m == to)));
            let text = parsed.body_text(0)?.to_string();
            if !addressed {
                return None;
            }
            crate::support::link_in(&text, base, path)
        })
    })
    .await
}

#[actix_web::test]
async fn merchant_journey_in_chromium_sqlite() {
    merchant_journey(Backend::Sqlite).await;
}

#[actix_web::test]
async fn merchant_journey_in_chromium_postgres() {
    merchant_journey(Backend::Postgres).await;
}

/// A merchant's first ten minutes: sign up, open the verification link from the mail,
/// create a business, invite a second person who signs up from the invitation, and a
/// third who signs in with the local OpenID provider and finishes with a phone number.
async fn merchant_journey(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Bound before the provider learns the redirect URL; the program serves on it.
    let (listener, port) = crate::support::listener().unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let Some(provider) = crate::oidc::Provider::start(&base) else { return };
    let google = &provider.configs()[0];
    let env = vec![
        ("HUBGATE_OIDC_GOOGLE_ISSUER".to_string(), google.issuer.clone()),
        ("HUBGATE_OIDC_GOOGLE_CLIENT_ID".to_string(), google.client_id.clone()),
        ("HUBGATE_OIDC_GOOGLE_CLIENT_SECRET".to_string(), google.client_secret.clone()),
    ];
    let name = format!("merchant-{backend:?}").to_lowercase();
    let Some(rig) = Rig::start_with(&name, backend, &[], (listener, port), env).await else { return };

    // The desk was set up by its administrator before merchants arrive.
    let admin = rig.tab().await;
    admin.go("/setup").await;
    admin.fill("input[name=email]", "admin@ipos.vn").await;
    admin.fill("input[name=name]", "Quản trị viên").await;
    admin.fill("input[name=password]", PASSWORD).await;
    admin.fill("input[name=confirm]", PASSWORD).await;
    admin.press("Tạo quản trị viên").await;

    // Sign up, on a phone.
    let owner = rig.tab().await;
    owner.c.set_window_size(390, 844).await.unwrap_or_else(|e| panic!("window: {e}"));
    owner.go("/login").await;
    owner.press("Đăng ký").await;
    owner.fill("input[name=email]", "huong@buncha.vn").await;
    owner.fill("input[name=name]", "Nguyễn Thị Hương").await;
    owner.fill("input[name=phone]", "0912 345 678").await;
    owner.fill("input[name=password]", PASSWORD).await;
    owner.fill("input[name=confirm]", PASSWORD).await;
    owner.shot("merchant-signup").await;
    owner.find("#signup-form button[type=submit]").await;
    owner.click("#signup-form button[type=submit]").await;
    assert_eq!(owner.path().await, "/app/verify");
    owner.see("Chúng tôi đã gửi thư xác nhận đến huong@buncha.vn").await;
    owner.shot("merchant-verify-pending").await;

    // The verification link, from the mail the SMTP server received.
    let link = mailed_link(&rig.inbox, &base, "huong@buncha.vn", "/verify-email?token=").await;
    owner.go(&link).await;
    owner.see("Email huong@buncha.vn đã được xác nhận").await;
    owner.press("Vào trang doanh nghiệp").await;
    owner.see("Bạn chưa có doanh nghiệp nào").await;

    // Create the business.
    owner.c.set_window_size(1280, 900).await.unwrap_or_else(|e| panic!("window: {e}"));
    owner.click(".titlebar a.button").await;
    owner.fill("input[name=website]", "bunchahuonglien.vn").await;
    owner.fill("input[name=name]", "Bún chả Hương Liên").await;
    owner.tap("input[name=feature][value=sync]").await;
    owner.tap("input[name=feature][value=balance]").await;
    owner.shot("merchant-new-business").await;
    owner.click("#business-form button[type=submit]").await;
    owner.see("Đã tạo doanh nghiệp Bún chả Hương Liên").await;
    owner.see("Miễn phí").await;
    owner.see("Đồng bộ giao dịch ngân hàng, Thông báo biến động số dư").await;
    let business_path = owner.path().await;
    owner.shot("merchant-business").await;

    // Invite a manager.
    owner.press("Thành viên").await;
    owner.fill("#invite-form input[name=email]", "quanly@buncha.vn").await;
    owner
        .find("#invite-form select[name=role]")
        .await
        .select_by_value("manager")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    owner.click("#invite-form button[type=submit]").await;
    owner.see("Đã gửi lời mời đến quanly@buncha.vn").await;
    owner.see("Lời mời đang chờ").await;
    owner.shot("merchant-invited").await;

    // The manager follows the mailed invitation, signs up from it and joins.
    let manager = rig.tab().await;
    let invite = mailed_link(&rig.inbox, &base, "quanly@buncha.vn", "/invite?token=").await;
    manager.go(&invite).await;
    manager.see("Bạn được mời tham gia doanh nghiệp Bún chả Hương Liên với vai trò Quản lý").await;
    manager.press("Đăng ký bằng quanly@buncha.vn").await;
    manager.fill("input[name=email]", "quanly@buncha.vn").await;
    manager.fill("input[name=name]", "Trần Văn Quản Lý").await;
    manager.fill("input[name=phone]", "+84 987 654 321").await;
    manager.fill("input[name=password]", PASSWORD).await;
    manager.fill("input[name=confirm]", PASSWORD).await;
    manager.click("#signup-form button[type=submit]").await;
    manager.click("#accept-invitation").await;
    assert_eq!(manager.path().await, business_path);
    manager.see("Bạn đã tham gia doanh nghiệp").await;
    manager.see("Vai trò của bạn: Quản lý").await;
    manager.shot("merchant-manager-joined").await;
    owner.press("Thành viên").await;
    owner.see("Trần Văn Quản Lý").await;

    // A third person signs in with the OpenID provider and finishes with a phone number.
    let third = rig.tab().await;
    third.go("/login").await;
    third.press("Đăng nhập bằng Google").await;
    third.see("Đăng nhập (OpenID thử nghiệm)").await;
    third.fill("#oidc-email", "minh@gmail.test").await;
    third.fill("#oidc-name", "Phạm Văn Minh").await;
    third.shot("merchant-openid-provider").await;
    third.click("#oidc-submit").await;
    assert_eq!(third.path().await, "/app/welcome");
    third.see("Điền số điện thoại để hoàn tất").await;
    third.fill("input[name=phone]", "0903 123 456").await;
    third.press("Hoàn tất").await;
    assert_eq!(third.path().await, "/app");
    third.see("Phạm Văn Minh").await;
    third.see("Bạn chưa có doanh nghiệp nào").await;
    third.shot("merchant-openid-done").await;
    for tab in [admin, owner, manager, third] {
        let _ = tab.c.close().await;
    }
}

/// A merchant links an account that the bank pushes to, adds a webhook in the browser,
/// sees its test call answered, then sees a pushed transaction in the delivery log as
/// the receiver got it.
#[actix_web::test]
async fn webhook_setup_and_delivery_log_in_chromium() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let receiver = crate::notify::Receiver::start().await;
    let env = vec![("HUBGATE_WEBHOOK_ALLOW_PRIVATE".to_string(), "true".to_string())];
    let socket = crate::support::listener().unwrap_or_else(|e| panic!("bind: {e}"));
    let Some(rig) = Rig::start_with("webhook", Backend::Sqlite, &[], socket, env).await else { return };
    // The account exists already (sign-up has its own journey).
    let url = format!("sqlite://{}/hubgate.db", rig.tmp.path().display());
    let pool = hubgate::db::pool(&url, 1).unwrap_or_else(|e| panic!("{e}"));
    let bid = {
        let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
        // The desk has its administrator (else every login goes to /setup).
        let admin = hubgate::accounts::service::UserInput {
            email: "admin@ipos.vn".into(),
            name: "Quản trị viên".into(),
            password: PASSWORD.into(),
            roles: vec![hubgate::accounts::Role::Admin],
        };
        hubgate::accounts::service::create_user(&mut conn, &hubgate::audit::Actor::system("e2e"), &admin)
            .unwrap_or_else(|e| panic!("{e}"));
        let owner = hubgate::accounts::merchant::create_ready_account(
            &mut conn,
            "chu@banhmi.vn",
            "Lê Văn Chủ",
            "0912345678",
            PASSWORD,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let actor = hubgate::audit::Actor::user(owner.id, &owner.email);
        let input = hubgate::business::service::BusinessInput {
            name: "Bánh mì Lê".into(),
            website: "banhmile.vn".into(),
            features: vec!["sync".into()],
        };
        hubgate::business::service::create_business(&mut conn, &actor, owner.id, &input)
            .unwrap_or_else(|e| panic!("{e}"))
            .id
    };
    let owner = rig.tab().await;
    owner.login("chu@banhmi.vn", PASSWORD).await;

    // The bank will push to hubgate: the address and its secret, shown once.
    owner.go(&format!("/app/b/{bid}/connect")).await;
    owner.find("#bank-select").await.select_by_value("970416").await.unwrap_or_else(|e| panic!("{e}"));
    owner.tap("#connect-form input[name=agree]").await;
    owner.click("#connect-form button[type=submit]").await;
    owner.fill("#push-form input[name=account_number]", "0071000555666").await;
    owner.fill("#push-form input[name=account_name]", "LE VAN CHU").await;
    owner.click("#push-form button[type=submit]").await;
    let push_url = owner.find("#push-url").await.text().await.unwrap_or_default();
    let push_secret = owner.find("#push-secret").await.text().await.unwrap_or_default();
    assert!(push_url.contains("/bank-hooks/") && !push_secret.is_empty(), "{push_url}");

    // Kho ứng dụng → Thêm webhook → Lưu và gọi thử.
    owner.go(&format!("/app/b/{bid}/integrations")).await;
    owner.see("Zalo OA").await;
    owner.see("Telegram bot").await;
    owner.click("#add-webhook").await;
    owner.fill("#webhook-form input[name=name]", "Phần mềm bán hàng").await;
    owner.fill("#webhook-form input[name=url]", &format!("{}/pos", receiver.base)).await;
    owner
        .find("#webhook-form select[name=format]")
        .await
        .select_by_value("casso_v2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    owner.shot("webhook-form").await;
    owner.click("#webhook-form button[type=submit]").await;
    owner.see("Máy nhận trả lời 200").await;
    owner.shot("webhook-created").await;
    assert_eq!(receiver.calls("/pos").len(), 1, "the test call");

    // The bank pushes a transaction; the worker delivers it; the log shows it.
    let body = serde_json::json!({ "transactions": [{
        "account_number": "0071000555666", "id": "FT26330123456", "booking_time": "2026-11-26 09:15:00",
        "amount": 45000, "description": "TRAN THI B mua banh mi",
    }]});
    let pushed = reqwest::Client::new()
        .post(&push_url)
        .header("authorization", format!("Apikey {push_secret}"))
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(pushed, 200);
    poll("the webhook delivery", async || (receiver.calls("/pos").len() == 2).then_some(())).await;
    owner.go(&format!("/app/b/{bid}/integrations")).await;
    owner.see("Phần mềm bán hàng").await;
    owner.press("Phần mềm bán hàng").await;
    let log = owner.find("#delivery-log").await.text().await.unwrap_or_default();
    assert!(log.contains("FT26330123456") && log.contains("45.000 đ") && log.contains("Đã gửi"), "{log}");
    assert!(log.contains("HTTP 200"), "the attempt's status: {log}");
    owner.shot("webhook-delivery-log").await;
    let (_, delivered) = &receiver.calls("/pos")[1];
    assert!(delivered.contains("FT26330123456"), "{delivered}");
    let _ = owner.c.close().await;
}

/// Bank statement import in the browser: the account's page → choose the file →
/// preview (mapping selects, balance check, first rows) → Nhập giao dịch → summary.
#[actix_web::test]
async fn statement_upload_mapping_summary_in_chromium() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(rig) = Rig::start("statement", Backend::Sqlite, &[]).await else { return };
    let url = format!("sqlite://{}/hubgate.db", rig.tmp.path().display());
    let pool = hubgate::db::pool(&url, 1).unwrap_or_else(|e| panic!("{e}"));
    let (bid, aid) = {
        let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
        let admin = hubgate::accounts::service::UserInput {
            email: "admin@ipos.vn".into(),
            name: "Quản trị viên".into(),
            password: PASSWORD.into(),
            roles: vec![hubgate::accounts::Role::Admin],
        };
        hubgate::accounts::service::create_user(&mut conn, &hubgate::audit::Actor::system("e2e"), &admin)
            .unwrap_or_else(|e| panic!("{e}"));
        let owner =
            hubgate::accounts::merchant::create_ready_account(&mut conn, "chu@saoke.vn", "Chủ", "0912345678", PASSWORD)
                .unwrap_or_else(|e| panic!("{e}"));
        let actor = hubgate::audit::Actor::user(owner.id, &owner.email);
        let input = hubgate::business::service::BusinessInput {
            name: "Cà phê Sao Kê".into(),
            website: "saoke.vn".into(),
            features: vec!["sync".into()],
        };
        let bid = hubgate::business::service::create_business(&mut conn, &actor, owner.id, &input)
            .unwrap_or_else(|e| panic!("{e}"))
            .id;
        let account = hubgate::business::service::link_account(
            &mut conn,
            &actor,
            &hubgate::business::models::NewBankAccount {
                business_id: bid,
                bank_code: "VCB",
                bank_name: "Vietcombank",
                account_number: "0071000123456",
                account_name: "CA PHE SAO KE",
                method: "push",
                connect_status: "connected",
                created_at: hubgate::db::now(),
                connection_id: None,
                bank_bin: "970436",
                external_id: "0071000123456",
                balance: None,
                sync_from: None,
                next_sync_at: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        (bid, account.id)
    };
    let file = rig.tmp.path().join("saoke-vietcombank.xlsx");
    std::fs::write(&file, crate::statement::vietcombank()).unwrap_or_else(|e| panic!("{e}"));

    let owner = rig.tab().await;
    owner.login("chu@saoke.vn", PASSWORD).await;
    owner.go(&format!("/app/b/{bid}/accounts")).await;
    owner.press("Nhập sao kê").await;
    assert_eq!(owner.path().await, format!("/app/b/{bid}/accounts/{aid}/statements"));
    owner
        .find("#statement-upload input[type=file]")
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap_or_else(|e| panic!("choose file: {e}"));
    owner.shot("statement-chosen").await;
    owner.click("#statement-upload button[type=submit]").await;
    owner.see("Khớp: số dư đầu kỳ 10.000.000 đ").await;
    let preview = owner.find("#statement-preview").await.text().await.unwrap_or_default();
    assert!(preview.contains("FT26305001") && preview.contains("2.500.000 đ"), "{preview}");
    assert_eq!(owner.value("#statement-confirm select[name=credit]").await, "4", "the detected credit column (E)");
    owner.shot("statement-preview").await;
    owner.press("Nhập giao dịch").await;
    // The worker imports while the page shows the bar and reloads itself.
    owner.see_soon("Kết quả nhập").await;
    let summary = owner.find("#statement-summary").await.text().await.unwrap_or_default();
    assert!(summary.contains("3 giao dịch mới") && summary.contains("dòng tổng cộng"), "{summary}");
    owner.shot("statement-summary").await;
    let _ = owner.c.close().await;
}
