//! Several nodes on one PostgreSQL behind nginx (issue 17): Debian's nginx balances two
//! `hubgate serve` processes (no embedded worker) round-robin, one `hubgate worker`
//! runs the jobs, all real processes on 127.0.0.1. Through the balancer: sessions hold
//! whichever node answers, login throttling sees each client, the partner mail becomes
//! a request whose acceptance mail leaves once, a scheduled tick runs once, pushed bank
//! transactions are notified once each; then a web node and the worker die by SIGKILL
//! under load and a new worker takes over: nothing lost, nothing doubled.
//!
//! PostgreSQL only. Needs nginx (`HUBGATE_TEST_NGINX`, else /usr/sbin/nginx): without it
//! the test prints a note and passes, except under `CI`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use hmac::Mac;
use hubgate::accounts::Role;
use hubgate::db::schema::{deliveries, jobs, mail_messages, requests, transactions};

use crate::support::{Browser, KillOnDrop, PASSWORD, TestApp, poll};

/// nginx from Debian, or None (with a note) when this machine has none.
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var("HUBGATE_TEST_NGINX").map(PathBuf::from).unwrap_or_else(|_| "/usr/sbin/nginx".into());
    if path.exists() {
        return Some(path);
    }
    crate::support::skipped(&format!(
        "no nginx at {} (apt-get install nginx-light, or set HUBGATE_TEST_NGINX)",
        path.display()
    ));
    None
}

/// The balancer's configuration: the README's snippet, plus what running unprivileged
/// from a temp dir needs (one process, files under the prefix), a test-only
/// `X-Upstream` header saying which node answered and a test-only location answering
/// `token` (what answers on the port is this nginx, not a process that took it).
fn nginx_conf(dir: &Path, port: u16, nodes: &[u16], token: &str) -> String {
    let d = dir.display();
    let servers: String =
        nodes.iter().map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n")).collect();
    format!(
        "master_process off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
             client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             log_format nodes '$remote_addr \"$request\" $status upstream=$upstream_addr';\n\
             access_log {d}/nginx-access.log nodes;\n\
             upstream hubgate {{\n{servers}    }}\n\
             server {{\n\
                 listen 127.0.0.1:{port};\n\
                 client_max_body_size 60m;\n\
                 location = /__instance {{ return 200 \"{token}\"; }}\n\
                 location / {{\n\
                     proxy_pass http://hubgate;\n\
                     proxy_set_header Host $http_host;\n\
                     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                     proxy_set_header X-Forwarded-Proto $scheme;\n\
                     proxy_next_upstream error timeout http_502 http_503;\n\
                     proxy_connect_timeout 2s;\n\
                     add_header X-Upstream $upstream_addr always;\n\
                 }}\n\
             }}\n\
         }}\n"
    )
}

/// The processes and the database of one run.
/// Fields drop in order: the processes go before their database and directory.
struct Cluster {
    web: Vec<Option<KillOnDrop>>,
    worker: Option<KillOnDrop>,
    _nginx: KillOnDrop,
    /// The database (fresh, migrated) and the helpers that seed it; its own
    /// in-process server is stopped: only the child processes serve.
    app: TestApp,
    tmp: tempfile::TempDir,
    base: String,
    web_ports: [u16; 2],
    env: Vec<(&'static str, String)>,
    workers_started: usize,
}

impl Cluster {
    /// Starts a child (`serve` or `worker`) with the shared environment plus `extra`,
    /// its own data directory (nothing on disk is shared between nodes) and its log.
    /// A web node gets its listening `socket` handed over (bound by the test).
    fn spawn(
        &self,
        name: &str,
        args: &[&str],
        extra: &[(&str, String)],
        socket: Option<std::net::TcpListener>,
    ) -> KillOnDrop {
        let data = self.tmp.path().join(name);
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(self.log(name)).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubgate"));
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HUBGATE_DATA_DIR", &data)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(socket) = socket {
            crate::support::hand_over(&mut cmd, socket).unwrap_or_else(|e| panic!("hand over: {e}"));
        }
        // `cmd` (and with it our copy of the socket) is dropped here: a killed node's
        // port then refuses connections, as a dead node's does.
        KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("hubgate {args:?}: {e}")))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.tmp.path().join(format!("{name}.log"))
    }

    fn web_base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.web_ports[i])
    }

    /// A new `hubgate worker`.
    fn start_worker(&mut self) {
        self.workers_started += 1;
        let name = format!("worker-{}", self.workers_started);
        self.worker = Some(self.spawn(&name, &["worker"], &[], None));
    }

    /// SIGKILL: no graceful anything.
    fn kill(child: &mut Option<KillOnDrop>) {
        if let Some(mut c) = child.take() {
            let _ = c.0.kill();
            let _ = c.0.wait();
        }
    }

    async fn start(nginx: &Path, smtp_port: u16) -> Option<Cluster> {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // The nodes' sockets, bound here and handed over: their ports (in nginx's
        // upstreams) are never free for another process to take.
        let sockets = [0, 1].map(|_| crate::support::listener().unwrap_or_else(|e| panic!("bind: {e}")));
        let web_ports = [sockets[0].1, sockets[1].1];
        let (nginx_proc, base_port) = start_nginx(nginx, tmp.path(), &web_ports);
        let base = format!("http://127.0.0.1:{base_port}");
        let secret: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
        let secret_hex = hex::encode(&secret);
        let public = base.clone();
        let app = TestApp::start_with(hubgate::db::Backend::Postgres, move |c| {
            c.secret = hubgate::config::SecretKey::from_bytes(secret);
            c.base_url = public;
            c.webhook_allow_private = true;
        })
        .await?;
        app.stop().await;
        // People that exist before the nodes start: the accountant the month's list
        // (a scheduled job, due at once) goes to, and sales.
        app.create_user("sale@ipos.vn", &[Role::Sale]);
        app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
        // What every node gets: one database, one secret key, the public URL.
        let env = vec![
            ("DATABASE_URL", app.database_url.clone()),
            ("HUBGATE_SECRET_KEY", secret_hex),
            ("HUBGATE_BASE_URL", base.clone()),
            ("HUBGATE_TRUSTED_PROXIES", "127.0.0.1".into()),
            ("HUBGATE_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
            ("HUBGATE_WEBHOOK_ALLOW_PRIVATE", "true".into()),
            ("HUBGATE_DB_POOL_SIZE", "6".into()),
            ("HUBGATE_HTTP_WORKERS", "2".into()),
            ("HUBGATE_WORKER_POLL_MS", "50".into()),
            // A killed worker's jobs are taken again after the lease; a job times out
            // before its lease ends, so a slow one is never run twice at once.
            ("HUBGATE_WORKER_LEASE_SECS", "8".into()),
            ("HUBGATE_WORKER_JOB_TIMEOUT_SECS", "6".into()),
            ("HUBGATE_LOG", "warn".into()),
        ];
        let mut cluster = Cluster {
            web: Vec::new(),
            worker: None,
            _nginx: nginx_proc,
            app,
            tmp,
            base,
            web_ports,
            env,
            workers_started: 0,
        };
        for (i, (socket, _)) in sockets.into_iter().enumerate() {
            let name = format!("web-{i}");
            let node = cluster.spawn(&name, &["serve"], &[("HUBGATE_WORKER_CONCURRENCY", "0".into())], Some(socket));
            cluster.web.push(Some(node));
        }
        cluster.start_worker();
        for i in 0..2 {
            let log = cluster.log(&format!("web-{i}"));
            crate::e2e::wait_until_up(&format!("{}/healthz", cluster.web_base(i)), "a web node", &log).await;
        }
        let nginx_errors = cluster.tmp.path().join("nginx-error.log");
        crate::e2e::wait_until_up(&format!("{}/healthz", cluster.base), "nginx", &nginx_errors).await;
        Some(cluster)
    }
}

/// nginx in `dir` as the balancer in front of `nodes`, on a port of its own: nginx
/// binds it itself (no socket can be handed to it), so when another process took the
/// port first nginx exits saying so, and it is started again on another.
fn start_nginx(nginx: &Path, dir: &Path, nodes: &[u16]) -> (KillOnDrop, u16) {
    crate::support::start_on_free_ports("nginx", 1, |ports| {
        let port = ports[0];
        let token = crate::support::instance_token();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir, port, nodes, &token)).unwrap_or_else(|e| panic!("{e}"));
        // Fresh logs per try: an earlier try's "Address already in use" says nothing now.
        let (stderr_path, error_path) = (dir.join("nginx-stderr.log"), dir.join("nginx-error.log"));
        let _ = std::fs::remove_file(&error_path);
        let stderr = std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("{e}"));
        let mut child = KillOnDrop(
            Command::new(nginx)
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_path)
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("nginx: {e}")),
        );
        let request = b"GET /__instance HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let logs = || {
            let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
            format!("{}{}", read(&stderr_path), read(&error_path))
        };
        crate::support::wait_for_own_server(&mut child.0, || crate::support::answers_with(port, request, &token), logs)
            .map(|()| (child, port))
    })
}

/// Which node answered, by the balancer's test-only header: the last node it tried
/// (after a failover it lists the dead one first).
async fn answered_by(b: &Browser, path: &str) -> (u16, String) {
    let (status, headers, _) = b.fetch(path).await;
    let tried = headers.get("x-upstream").and_then(|v| v.to_str().ok()).unwrap_or("");
    (status, tried.rsplit(", ").next().unwrap_or("").to_string())
}

/// Our own push format, HMAC-SHA256 over the raw body with the push key.
fn signed_push(secret: &str, account: &str, tx: &str, amount: i64) -> (String, String) {
    let body = serde_json::json!({"transactions": [{
        "account_number": account, "id": tx, "booking_time": "2026-11-25T15:00:00+07:00",
        "amount": amount, "description": format!("Chuyển khoản {tx}"),
    }]})
    .to_string();
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body.as_bytes());
    (body, format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

/// Pushes one transaction until the balancer answers 200 (a request in flight to a
/// node that dies may fail: the bank sends it again, as a bank does). Returns whether
/// it was new and how many sends it took.
async fn push(http: &reqwest::Client, url: &str, secret: &str, tx: &str) -> (bool, usize) {
    let (body, sig) = signed_push(secret, "0801234567", tx, 10_000);
    let started = std::time::Instant::now();
    let mut sends = 0;
    loop {
        sends += 1;
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-hubgate-signature", &sig)
            .body(body.clone())
            .send()
            .await;
        if let Ok(r) = sent
            && r.status() == 200
        {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            let (new, known) = (v["data"]["new"].as_i64(), v["data"]["known"].as_i64());
            assert!(matches!((new, known), (Some(1), Some(0)) | (Some(0), Some(1))), "push {tx}: {v}");
            return (new == Some(1), sends);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "push {tx} never got through");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The bank transaction ids the receiver got, each with the webhook ids it came under.
fn receipts(rx: &crate::notify::Receiver) -> BTreeMap<String, Vec<String>> {
    let mut by_tx: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (headers, body) in rx.calls("/std") {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let Some(reference) = v["data"]["reference"].as_str() else { continue };
        let id = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("webhook-id")).map(|(_, v)| v.clone());
        by_tx.entry(reference.to_string()).or_default().push(id.unwrap_or_default());
    }
    by_tx
}

/// Mails the SMTP server received whose subject contains `subject`.
fn mails_with(inbox: &crate::smtp::Inbox, subject: &str) -> usize {
    let parser = mail_parser::MessageParser::default();
    inbox
        .received()
        .iter()
        .filter_map(|raw| parser.parse(raw))
        .filter(|m| m.subject().unwrap_or("").contains(subject))
        .count()
}

#[actix_web::test]
async fn two_web_nodes_and_a_worker_behind_nginx() {
    let Some(nginx) = nginx_binary() else { return };
    let (smtp_port, inbox, _smtp) = crate::smtp::start(0).await;
    let rx = crate::notify::Receiver::start().await;
    let Some(mut cluster) = Cluster::start(&nginx, smtp_port).await else { return };
    let base = cluster.base.clone();
    let app = &cluster.app;

    // Login throttling behind the balancer counts per client: a client failing at the
    // password again and again is stopped; another one, behind the same proxy, is not.
    let (guesser, sale_address): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 3].into());
    let guess = Browser::from_address(&base, guesser);
    for i in 0..hubgate::accounts::service::ADDRESS_FAILURE_LIMIT {
        let r = guess.login(&format!("khach{i}@doan-mo.vn"), "sai-mat-khau").await;
        assert_eq!(r.status, 401, "failed login {i}: {}", r.body);
    }
    let stopped = guess.login("sale@ipos.vn", PASSWORD).await;
    assert_eq!(stopped.status, 429, "the guessing client is throttled: {}", stopped.body);
    let sale = Browser::from_address(&base, sale_address);
    let r = sale.login("sale@ipos.vn", PASSWORD).await;
    assert_eq!(r.status, 303, "another client behind the same proxy logs in: {}", r.body);

    // The session holds whichever node answers, and both nodes answer.
    let mut nodes = BTreeSet::new();
    for _ in 0..6 {
        let (status, node) = answered_by(&sale, "/").await;
        assert_eq!(status, 200, "signed in on {node}");
        nodes.insert(node);
    }
    let expected: BTreeSet<String> = cluster.web_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert_eq!(nodes, expected, "round robin over both web nodes");

    // B1 through the balancer: the partner's mails uploaded, the request opened.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail");
    let files = ["a01-momo-request-outlook.eml", "a02-merchant-confirm-gmail.eml", "a03-momo-leader-approve.eml"];
    sale.get("/mail/upload").await;
    let uploaded = sale
        .upload("/mail/upload", |mut form| {
            for f in files {
                let raw = std::fs::read(corpus.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
                form = form.part("files", reqwest::multipart::Part::bytes(raw).file_name(f));
            }
            form
        })
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    let (mail, partner): (i64, Option<i64>) = app
        .with_conn(|c| {
            mail_messages::table
                .filter(mail_messages::message_id.eq("A01.outlook@momo.vn"))
                .select((mail_messages::id, mail_messages::partner_id))
                .first(c)
        })
        .unwrap_or_else(|e| panic!("the uploaded request mail: {e}"));
    let form = sale.get(&format!("/requests/new?mail={mail}")).await;
    assert!(form.body.contains("Phở Thìn Lò Đúc"), "prefilled from the mail: {}", form.body);
    let created = crate::hub::open_pho_thin(&sale, partner.unwrap_or(-1), mail).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let request = created.location.clone().unwrap_or_default();
    let opened = sale.get(&request).await;
    assert!(opened.body.contains("Phở Thìn"), "{}", opened.body);
    let id: i64 = request.trim_start_matches("/requests/").parse().unwrap_or(-1);

    // B2: the acceptance mail; the same form sent again (to the other node) is refused.
    let draft = sale.get(&format!("/requests/{id}/accept")).await;
    assert_eq!(draft.status, 200, "{}", draft.body);
    let version: i64 = app.with_conn(|c| requests::table.find(id).select(requests::version).first(c)).unwrap_or(-1);
    let version = version.to_string();
    let subject = "RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc";
    let fields = [
        ("version", version.as_str()),
        ("to", "hub@momo.vn"),
        ("cc", "lan@phothin.vn, leader@momo.vn"),
        ("subject", subject),
        ("body", "Kính gửi MoMo,\n\niPOS đồng ý mở cổng cho Phở Thìn.\n\nTrân trọng"),
    ];
    let accepted = sale.post(&format!("/requests/{id}/accept"), &fields).await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let again = sale.post(&format!("/requests/{id}/accept"), &fields).await;
    assert_eq!(again.status, 422, "a second acceptance is refused: {}", again.body);
    poll("the acceptance mail at the SMTP server", async || (mails_with(&inbox, subject) > 0).then_some(())).await;

    // Pushed bank transactions: a merchant links a push source and a webhook, through
    // the balancer like everything else.
    let owner = app.create_merchant("chu@nhieunode.vn");
    let bid = app.create_business(&owner, "Cà phê Nhiều Node");
    let merchant = Browser::new(&base);
    assert_eq!(merchant.login("chu@nhieunode.vn", PASSWORD).await.status, 303);
    let (push_url, push_secret) = crate::banking::connect_push(&merchant, bid).await;
    assert!(push_url.starts_with(&base), "the push URL is the balancer's: {push_url}");
    let (_, _, page) = crate::notify::add(&merchant, bid, &format!("{}/std", rx.base), "standard", false).await;
    assert!(page.contains("Máy nhận trả lời 200"), "the test call reached the receiver: {page}");

    let http = reqwest::Client::new();
    let first: Vec<String> = (1..=5).map(|i| format!("FT-{i}")).collect();
    for tx in &first {
        assert!(push(&http, &push_url, &push_secret, tx).await.0, "{tx} is new");
    }
    // The bank sends one again: known, not stored or notified twice.
    assert!(!push(&http, &push_url, &push_secret, &first[0]).await.0, "a repeated push is known");
    poll("the first five notifications", async || (receipts(&rx).len() >= first.len()).then_some(())).await;
    let delivered = |app: &TestApp, n: i64| {
        app.with_conn(|c| deliveries::table.filter(deliveries::status.eq("delivered")).count().get_result::<i64>(c))
            .unwrap_or(0)
            >= n
    };
    poll("the first five deliveries recorded", async || delivered(app, 5).then_some(())).await;
    let got = receipts(&rx);
    for tx in &first {
        assert_eq!(got.get(tx).map(Vec::len), Some(1), "{tx} notified exactly once");
    }

    // Under load through the balancer: kill -9 a web node and the worker, start a new
    // worker. A push in flight at the kill may fail; the client sends it again.
    // A slow receiver keeps the worker busy, so the kill finds deliveries in flight.
    rx.slow(std::time::Duration::from_millis(300));
    let load: Vec<String> = (1..=150).map(|i| format!("LOAD-{i}")).collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let (http, url, secret, load, acked) =
            (http.clone(), push_url.clone(), push_secret.clone(), load.clone(), acked.clone());
        actix_web::rt::spawn(async move {
            let mut resent = 0;
            for tx in &load {
                resent += push(&http, &url, &secret, tx).await.1 - 1;
                acked.fetch_add(1, Ordering::SeqCst);
            }
            resent
        })
    };
    // The worker's claims: unfinished jobs whose lease has not run out.
    let held = |app: &TestApp| -> Vec<i64> {
        let now = hubgate::db::now();
        app.with_conn(|c| {
            jobs::table.filter(jobs::done_at.is_null()).filter(jobs::locked_until.gt(now)).select(jobs::id).load(c)
        })
        .unwrap_or_default()
    };
    poll("a third of the load, the worker busy", async || {
        (acked.load(Ordering::SeqCst) >= 50 && !held(&cluster.app).is_empty()).then_some(())
    })
    .await;
    Cluster::kill(&mut cluster.web[0]);
    Cluster::kill(&mut cluster.worker);
    let killed_at = acked.load(Ordering::SeqCst);
    let orphaned = held(&cluster.app);
    assert!(!orphaned.is_empty(), "the worker died holding jobs");
    cluster.start_worker();
    // The survivor keeps the session.
    for _ in 0..4 {
        let (status, node) = answered_by(&sale, &request).await;
        assert_eq!((status, node), (200, format!("127.0.0.1:{}", cluster.web_ports[1])), "still signed in");
    }
    let resent = pusher.await.unwrap_or_else(|e| panic!("the load: {e}"));
    assert!(killed_at < load.len(), "the kill happened mid-load ({killed_at} of {})", load.len());
    let app = &cluster.app;

    // Every transaction stored once, delivered, and received.
    let all: Vec<String> = first.iter().chain(&load).cloned().collect();
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    poll("every delivery recorded", async || delivered(app, total).then_some(())).await;
    poll("every notification received", async || (receipts(&rx).len() >= all.len()).then_some(())).await;
    let stored: Vec<(i64, String)> = app
        .with_conn(|c| {
            transactions::table
                .filter(transactions::bank_tx_id.eq_any(&all))
                .select((transactions::id, transactions::bank_tx_id))
                .load(c)
        })
        .unwrap_or_default();
    let names: BTreeSet<&String> = stored.iter().map(|(_, t)| t).collect();
    assert_eq!((stored.len(), names.len()), (all.len(), all.len()), "each transaction stored once");
    let tx_ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    let made: Vec<(i64, i64, String, i64)> = app
        .with_conn(|c| {
            deliveries::table
                .filter(deliveries::transaction_id.eq_any(&tx_ids))
                .select((deliveries::id, deliveries::transaction_id, deliveries::status, deliveries::attempts))
                .load(c)
        })
        .unwrap_or_default();
    assert_eq!(made.len(), all.len(), "one delivery per transaction");
    // One recorded attempt each: none was sent again after being recorded delivered.
    let recorded: Vec<_> = made.iter().filter(|(_, _, status, n)| (status.as_str(), *n) != ("delivered", 1)).collect();
    assert!(recorded.is_empty(), "deliveries not delivered at the first recorded attempt: {recorded:?}");
    // A webhook is an HTTP call: one interrupted between the receiver's 200 and its
    // record can only be sent again, under the same webhook-id (the receiver's key for
    // dropping repeats). So: every transaction arrives under exactly one id, and a
    // second arrival only for a delivery whose job the kill interrupted.
    let got = receipts(&rx);
    let by_tx: BTreeMap<String, i64> = stored.iter().map(|(id, t)| (t.clone(), *id)).collect();
    let delivery_of: BTreeMap<i64, i64> = made.iter().map(|(d, t, _, _)| (*t, *d)).collect();
    let mut repeated = 0;
    for tx in &all {
        let ids = got.get(tx).unwrap_or_else(|| panic!("{tx} never notified"));
        let did = delivery_of.get(&by_tx[tx]).copied().unwrap_or(-1);
        assert!(ids.iter().all(|i| *i == format!("msg_{did}")), "{tx} under one webhook-id: {ids:?}");
        if ids.len() > 1 {
            repeated += 1;
            let (job, attempts): (i64, i64) = app
                .with_conn(|c| {
                    jobs::table
                        .filter(jobs::unique_key.eq(format!("deliver:{did}:1:0")))
                        .select((jobs::id, jobs::attempts))
                        .first(c)
                })
                .unwrap_or((-1, 0));
            assert!(
                ids.len() == 2 && attempts == 2 && orphaned.contains(&job),
                "{tx} sent {} times; its job ran {attempts} times and was{} in the dead worker's hands",
                ids.len(),
                if orphaned.contains(&job) { "" } else { " not" }
            );
        }
    }
    let unfinished: i64 = app
        .with_conn(|c| {
            jobs::table.filter(jobs::id.eq_any(&orphaned)).filter(jobs::done_at.is_null()).count().get_result(c)
        })
        .unwrap_or(-1);
    assert_eq!(unfinished, 0, "the new worker finished the dead one's jobs");

    // The acceptance mail left once, and the month's list (a scheduled tick of every
    // node: two web nodes, the killed worker and its successor) once.
    assert_eq!(mails_with(&inbox, subject), 1, "the acceptance mail left exactly once");
    let list = "Danh sách điểm kết nối thành công tháng";
    poll("the month's list for the accountant", async || (mails_with(&inbox, list) > 0).then_some(())).await;
    let ticks: Vec<i64> = app
        .with_conn(|c| jobs::table.filter(jobs::unique_key.like("schedule:monthly-report:%")).select(jobs::id).load(c))
        .unwrap_or_default();
    assert_eq!(ticks.len(), 1, "one job for the month's slot");
    let runs: i64 = app
        .with_conn(|c| {
            let tick = hubgate::worker::models::job(c, ticks.first().copied().unwrap_or_default())?;
            let history = hubgate::worker::models::events_of(c, &tick)?;
            diesel::QueryResult::Ok(history.iter().filter(|e| e.1 == "succeeded").count() as i64)
        })
        .unwrap_or(-1);
    assert_eq!(runs, 1, "the tick ran once");
    assert_eq!(mails_with(&inbox, list), 1, "the month's list was mailed once");
    eprintln!(
        "nodes: {} pushes ({resent} sent again after the kill at {killed_at}), the dead worker held {} jobs, \
         {repeated} webhook(s) repeated",
        all.len(),
        orphaned.len()
    );
}
