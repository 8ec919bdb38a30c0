//! Webhooks on new transactions, delivered by the real worker to a local receiver that
//! verifies each signature format the way a merchant's server would; both databases.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use hmac::Mac;
use hubgate::audit::Actor;
use hubgate::banking::connectors::IncomingTx;
use hubgate::business::models::NewBankAccount;
use hubgate::db::schema::{deliveries, integrations, jobs};

use crate::support::TestApp;

/// Headers as (name, value) pairs.
type Headers = Vec<(String, String)>;

#[derive(Default)]
struct Received {
    /// (path, headers, body)
    calls: Vec<(String, Headers, String)>,
    /// Status codes to answer next, in order; then 200.
    script: Vec<u16>,
    /// How long each answer takes (a slow receiver keeps deliveries in flight).
    delay: std::time::Duration,
}

pub(crate) struct Receiver {
    pub(crate) base: String,
    state: Arc<Mutex<Received>>,
}

async fn receive(state: web::Data<Arc<Mutex<Received>>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let (status, delay) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let headers =
            req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
        s.calls.push((req.path().to_string(), headers, String::from_utf8_lossy(&body).to_string()));
        (if s.script.is_empty() { 200 } else { s.script.remove(0) }, s.delay)
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK))
        .json(serde_json::json!({ "code": status, "message": "ok" }))
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(Received::default()));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        Receiver { base: format!("http://{addr}"), state }
    }

    /// Every answer from now on takes `delay` (received at once, answered after).
    pub(crate) fn slow(&self, delay: std::time::Duration) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).delay = delay;
    }

    pub(crate) fn calls(&self, path: &str) -> Vec<(Headers, String)> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.calls.iter().filter(|(p, _, _)| p == path).map(|(_, h, b)| (h.clone(), b.clone())).collect()
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// Runs the real worker until `done` holds (30 s at most).
pub(crate) async fn work_until(app: &TestApp, mut done: impl FnMut() -> bool) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let opts = hubgate::worker::runner::WorkerOptions {
        name: "notify-test".into(),
        concurrency: 4,
        lease: std::time::Duration::from_secs(60),
        poll: std::time::Duration::from_millis(20),
        job_timeout: std::time::Duration::from_secs(20),
        grace: std::time::Duration::from_secs(2),
    };
    let registry = std::sync::Arc::new(hubgate::app::registry(&app.state.config));
    let worker = tokio::spawn(hubgate::worker::runner::run(app.state.services.clone(), registry, opts, rx));
    let started = std::time::Instant::now();
    while !done() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let failing: Vec<(String, Option<String>)> = app
                .with_conn(|c| {
                    jobs::table.filter(jobs::last_error.is_not_null()).select((jobs::kind, jobs::last_error)).load(c)
                })
                .unwrap_or_default();
            panic!("timed out waiting for the worker; jobs with errors: {failing:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let _ = stop.send(true);
    let _ = worker.await;
}

pub(crate) fn tx(id: &str, amount: i64) -> IncomingTx {
    IncomingTx {
        bank_tx_id: id.into(),
        amount,
        description: format!("Giao dịch {id}"),
        balance: Some(1_000_000),
        occurred_at: hubgate::db::now(),
        pending: false,
        counter_account: "0123".into(),
        counter_name: "NGUYEN VAN AN".into(),
        counter_bank_id: "970436".into(),
        counter_bank_name: "Vietcombank".into(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: String::new(),
        replaces: None,
    }
}

pub(crate) async fn setup(app: &TestApp) -> (crate::support::Browser, i64, hubgate::business::models::BankAccount) {
    let owner = app.create_merchant("chu@webhook.vn");
    let bid = app.create_business(&owner, "Webhook");
    let account = app
        .with_conn(|c| {
            hubgate::business::service::link_account(
                c,
                &Actor::system("test"),
                &NewBankAccount {
                    business_id: bid,
                    bank_code: "ACB",
                    bank_name: "ACB",
                    account_number: "0071",
                    account_name: "WEBHOOK",
                    method: "push",
                    connect_status: "connected",
                    created_at: hubgate::db::now(),
                    connection_id: None,
                    bank_bin: "970416",
                    external_id: "0071",
                    balance: None,
                    sync_from: None,
                    next_sync_at: None,
                },
            )
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    (app.login("chu@webhook.vn").await, bid, account)
}

/// Adds a webhook through the form; returns (integration id, secret, created page).
pub(crate) async fn add(
    b: &crate::support::Browser,
    bid: i64,
    url: &str,
    format: &str,
    income_only: bool,
) -> (i64, String, String) {
    b.get(&format!("/app/b/{bid}/integrations/webhooks/new")).await;
    let mut fields = vec![("name", format), ("url", url), ("format", format)];
    if income_only {
        fields.push(("income_only", "1"));
    }
    let page = b.post(&format!("/app/b/{bid}/integrations/webhooks"), &fields).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let secret =
        page.body.split("id=\"webhook-secret\">").nth(1).and_then(|s| s.split('<').next()).unwrap_or("").to_string();
    let id = page
        .body
        .split(&format!("/app/b/{bid}/integrations/"))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    (id, secret, page.body)
}

receiver_test!(three_formats_signed_and_delivered_once, |app, rx| {
    let (b, bid, account) = setup(&app).await;
    let (_, legacy_secret, page) = add(&b, bid, &format!("{}/legacy", rx.base), "casso_legacy", false).await;
    assert!(page.contains("Máy nhận trả lời 200"), "the test call reached the receiver: {page}");
    let (_, v2_secret, _) = add(&b, bid, &format!("{}/v2", rx.base), "casso_v2", true).await;
    let (_, std_secret, _) = add(&b, bid, &format!("{}/std", rx.base), "standard", false).await;
    assert!(std_secret.starts_with("whsec_"));
    assert_eq!(rx.calls("/legacy").len(), 1, "one test call each");

    // Two new transactions (one in, one out) and a repeat of the first.
    app.with_conn(|c| {
        hubgate::banking::sync::apply_page(c, &account, &[tx("IN-1", 150_000), tx("OUT-1", -20_000)], "sync")
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("IN-1", 150_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let made: i64 = app.with_conn(|c| deliveries::table.count().get_result(c)).unwrap_or(-1);
    assert_eq!(made, 5, "legacy 2 + v2 (income only) 1 + standard 2");
    work_until(&app, || rx.calls("/legacy").len() == 3 && rx.calls("/v2").len() == 2 && rx.calls("/std").len() == 3)
        .await;

    // Legacy: the secure-token header and a data array.
    let (h, body) = &rx.calls("/legacy")[1];
    assert_eq!(header(h, "secure-token"), legacy_secret);
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    assert_eq!(v["error"], 0);
    assert!(v["data"][0]["tid"].is_string() && v["data"][0]["cusum_balance"] == 1_000_000);
    // V2: HMAC-SHA512 over "t.body", verified from the raw bytes received.
    let (h, body) = &rx.calls("/v2")[1];
    let sig = header(h, "x-casso-signature");
    let t = sig.split(',').find_map(|p| p.strip_prefix("t=")).unwrap_or("");
    let v1 = sig.split(',').find_map(|p| p.strip_prefix("v1=")).unwrap_or("");
    let mut mac =
        <hmac::Hmac<sha2::Sha512> as Mac>::new_from_slice(v2_secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()), "X-Casso-Signature verifies");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    assert_eq!((v["data"]["reference"].as_str(), v["data"]["amount"].as_i64()), (Some("IN-1"), Some(150_000)));
    // Standard Webhooks: id.timestamp.body under the base64 secret.
    let (h, body) = &rx.calls("/std")[2];
    let key =
        base64::engine::general_purpose::STANDARD.decode(std_secret.trim_start_matches("whsec_")).unwrap_or_default();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{}.{}.{}", header(h, "webhook-id"), header(h, "webhook-timestamp"), body).as_bytes());
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(header(h, "webhook-signature"), expected);
    assert!(header(h, "webhook-id").starts_with("msg_"));
    let delivered: i64 = app
        .with_conn(|c| deliveries::table.filter(deliveries::status.eq("delivered")).count().get_result(c))
        .unwrap_or(-1);
    assert_eq!(delivered, 5);
});

receiver_test!(a_receiver_down_then_back_gets_each_transaction_once, |app, rx| {
    let (b, bid, account) = setup(&app).await;
    let (iid, _, _) = add(&b, bid, &format!("{}/flaky", rx.base), "casso_v2", false).await;
    rx.state.lock().unwrap_or_else(|e| e.into_inner()).script = vec![503, 500];
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("A-1", 99_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    // First attempt fails; the next is scheduled a minute later. Let the minutes pass.
    for expected in [2, 3, 4] {
        work_until(&app, || rx.calls("/flaky").len() >= expected).await;
        let due = hubgate::db::now();
        app.with_conn(|c| {
            diesel::update(jobs::table.filter(jobs::kind.eq("notify.deliver")).filter(jobs::done_at.is_null()))
                .set(jobs::run_at.eq(due))
                .execute(c)
        })
        .unwrap_or(0);
    }
    let calls = rx.calls("/flaky");
    assert_eq!(calls.len(), 4, "test call, 503, 500, then 200");
    let (status, attempts): (String, i64) = app
        .with_conn(|c| deliveries::table.select((deliveries::status, deliveries::attempts)).first(c))
        .unwrap_or_default();
    assert_eq!((status.as_str(), attempts), ("delivered", 3));
    let log = b.get(&format!("/app/b/{bid}/integrations/{iid}")).await;
    assert!(
        log.body.contains("HTTP 503") && log.body.contains("HTTP 500") && log.body.contains("Đã gửi"),
        "{}",
        log.body
    );
    // Replaying the day sends it once more, on purpose.
    let today = hubgate::fmt::local_date(hubgate::db::now()).format("%Y-%m-%d").to_string();
    b.post(&format!("/app/b/{bid}/integrations/{iid}/replay"), &[("from", &today)]).await;
    work_until(&app, || rx.calls("/flaky").len() == 5).await;
});

// The store counts its new rows against the plan last (a row every store of the
// business writes); the notifications it makes before that count them all the same: the
// transaction that reaches the quota is held, the one before it is not.
receiver_test!(the_transaction_that_reaches_the_quota_is_held, |app, rx| {
    use hubgate::business::service;
    let (b, bid, account) = setup(&app).await;
    add(&b, bid, &format!("{}/quota", rx.base), "casso_v2", false).await;
    let quota = app
        .with_conn(|c| {
            let business = hubgate::business::models::business(c, bid)?;
            service::plan_status(c, &business)
        })
        .map(|s| s.plan.monthly_tx_quota)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let status_of = |bank_id: &str| -> String {
        app.with_conn(|c| {
            use hubgate::db::schema::transactions;
            deliveries::table
                .inner_join(transactions::table)
                .filter(transactions::bank_tx_id.eq(bank_id))
                .select(deliveries::status)
                .first(c)
        })
        .unwrap_or_default()
    };
    app.with_conn(|c| service::record_usage(c, bid, quota - 2)).unwrap_or_else(|e| panic!("{e:?}"));
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("Q-1", 5_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_ne!(status_of("Q-1"), "held", "one transaction was left");
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("Q-2", 5_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(status_of("Q-2"), "held");
    assert!(app.with_conn(|c| service::quota_reached(c, bid)).unwrap_or(false), "both were counted");
});

// One business's stores at the same time (a burst of pushes): each writes the day sums
// and the usage in one of a few rows (PostgreSQL), and every total reads them summed.
db_test!(concurrent_stores_of_one_business_add_up, |app| {
    let (_b, bid, account) = setup(&app).await;
    let pool = app.state.pool.clone();
    let stores: Vec<_> = (0..12)
        .map(|t| {
            let (pool, account) = (pool.clone(), account.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                for page in 0..5 {
                    let txs = [tx(&format!("C-{t}-{page}-a"), 10_000), tx(&format!("C-{t}-{page}-b"), -3_000)];
                    hubgate::banking::sync::apply_page(&mut conn, &account, &txs, "push").map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for store in stores {
        store.join().unwrap_or_else(|_| Err("panicked".into())).unwrap_or_else(|e| panic!("{e}"));
    }
    let days = app.with_conn(|c| hubgate::banking::models::day_totals(c, bid, None, None)).unwrap_or_default();
    let sums = days.iter().fold((0, 0, 0), |s, d| (s.0 + d.1, s.1 + d.2, s.2 + d.3));
    assert_eq!(sums, (120, 60 * 10_000, 60 * -3_000), "{days:?}");
    let mut each_day: Vec<_> = days.iter().map(|d| d.0).collect();
    each_day.dedup();
    assert_eq!(each_day.len(), days.len(), "one total a day, whatever rows it is kept in: {days:?}");
    assert_eq!(app.with_conn(|c| hubgate::business::service::usage_this_month(c, bid)).unwrap_or(-1), 120);
    // A deletion may land in another slot than its insert: the day still sums right.
    let one: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::transactions;
            transactions::table.filter(transactions::bank_tx_id.eq("C-0-0-a")).select(transactions::id).first(c)
        })
        .unwrap_or(-1);
    assert!(app.with_conn(|c| hubgate::banking::models::tombstone(c, one, hubgate::db::now())).unwrap_or(false));
    let days = app.with_conn(|c| hubgate::banking::models::day_totals(c, bid, None, None)).unwrap_or_default();
    let sums = days.iter().fold((0, 0), |s, d| (s.0 + d.1, s.1 + d.2));
    assert_eq!(sums, (119, 59 * 10_000));
});

// PostgreSQL keeps a counter row locked until its store commits. A push must not
// queue behind another store of this node still open: each store writes its own slot.
#[actix_web::test]
async fn a_push_never_waits_for_another_store_of_this_node() {
    use diesel::connection::SimpleConnection;
    use hubgate::banking::models::Lane;
    let Some(app) = TestApp::start_pg().await else {
        return;
    };
    let (_b, bid, account) = setup(&app).await;
    let month = hubgate::business::service::current_month();
    // Fifteen stores of this node open at once, each holding its slot's usage row.
    let mut open = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    open.batch_execute("BEGIN").unwrap_or_else(|e| panic!("{e}"));
    let held: Vec<Lane> = (0..15).map(|_| Lane::take(&open)).collect();
    let mut slots: Vec<i16> = held.iter().map(Lane::slot).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 15, "each open store has its own slot");
    for lane in &held {
        hubgate::business::models::add_usage(&mut open, bid, &month, lane.slot(), 1).unwrap_or_else(|e| panic!("{e}"));
    }
    // The sixteenth: it would wait for the open ones if it shared a slot; the lock
    // timeout turns that wait into an error.
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute("SET lock_timeout = '3s'").unwrap_or_else(|e| panic!("{e}"));
    let stored = hubgate::banking::sync::apply_page(&mut conn, &account, &[tx("L-1", 10_000)], "push");
    conn.batch_execute("SET lock_timeout = 0").unwrap_or_else(|e| panic!("{e}"));
    assert!(stored.is_ok(), "the push waited for another store: {stored:?}");
    open.batch_execute("ROLLBACK").unwrap_or_else(|e| panic!("{e}"));
    drop(held);
    assert_eq!(app.with_conn(|c| hubgate::business::service::usage_this_month(c, bid)).unwrap_or(-1), 1);
}

receiver_test!(gone_disables_and_private_destinations_are_refused, |app, rx| {
    let (b, bid, account) = setup(&app).await;
    let (iid, _, _) = add(&b, bid, &format!("{}/gone", rx.base), "casso_legacy", false).await;
    rx.state.lock().unwrap_or_else(|e| e.into_inner()).script = vec![410];
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("G-1", 1_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    work_until(&app, || rx.calls("/gone").len() == 2).await;
    let enabled: bool =
        app.with_conn(|c| integrations::table.find(iid).select(integrations::enabled).first(c)).unwrap_or(true);
    assert!(!enabled, "410 Gone turns the webhook off");
    assert!(app.last_mail_to("chu@webhook.vn", "đã bị tắt").is_some(), "the owner is told");
    // A disabled webhook gets nothing new.
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("G-2", 1_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let made: i64 = app.with_conn(|c| deliveries::table.count().get_result(c)).unwrap_or(-1);
    assert_eq!(made, 1);

    // Without the allowance, loopback and private destinations are refused.
    let strict = TestApp::start(app.backend).await;
    strict.create_merchant("strict@webhook.vn");
    let owner = strict.with_conn(|c| hubgate::accounts::models::find_by_email(c, "strict@webhook.vn")).ok().flatten();
    let sbid = owner.map(|o| strict.create_business(&o, "Strict")).unwrap_or(-1);
    let sb = strict.login("strict@webhook.vn").await;
    for url in [
        format!("{}/x", rx.base),
        "http://10.0.0.8/hook".into(),
        "http://[::1]/hook".into(),
        "ftp://example.com/x".into(),
    ] {
        sb.get(&format!("/app/b/{sbid}/integrations/webhooks/new")).await;
        let page =
            sb.post(&format!("/app/b/{sbid}/integrations/webhooks"), &[("url", &url), ("format", "casso_v2")]).await;
        assert_eq!(page.status, 422, "{url}");
    }
    assert_eq!(strict.with_conn(|c| integrations::table.count().get_result::<i64>(c)).unwrap_or(-1), 0);
});
