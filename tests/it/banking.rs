//! Bank linking and the sync engine against a local bank and RPA agent that speak the
//! protocols for real (tests/it/fakebank.rs); every test on SQLite and PostgreSQL.

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl, TextExpressionMethods};
use hubgate::audit::Actor;
use hubgate::banking::connectors::IncomingTx;
use hubgate::business::models::NewBankAccount;
use hubgate::db::schema::{bank_accounts, bank_connections, jobs, transactions};
use hubgate::worker::runner::JobCtx;

use crate::fakebank::{AGENT_TOKEN, BANK_PASSWORD, CLIENT_ID, CLIENT_SECRET, FakeBank};
use crate::support::{Browser, TestApp};

/// Runs the body on both backends with a fake bank configured.
macro_rules! bank_test {
    ($name:ident, |$app:ident, $bank:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run(backend: hubgate::db::Backend) {
                let $bank = FakeBank::start().await;
                let Some($app) = TestApp::start_with(backend, |c| $bank.configure(c)).await else { return };
                $body
            }

            crate::on_both_backends!(run);
        }
    };
}

pub async fn sync(app: &TestApp, account_id: i64) -> Result<(), String> {
    let ctx = JobCtx {
        services: app.state.services.clone(),
        id: 0,
        payload: serde_json::json!({ "account_id": account_id }),
        attempt: 1,
        max_attempts: 3,
    };
    hubgate::banking::sync::sync_job(ctx).await
}

fn count(app: &TestApp, account_id: i64) -> i64 {
    app.with_conn(|c| {
        transactions::table
            .filter(transactions::account_id.eq(account_id))
            .filter(transactions::deleted_at.is_null())
            .count()
            .get_result(c)
    })
    .unwrap_or(-1)
}

fn account_row(app: &TestApp, id: i64) -> hubgate::business::models::BankAccount {
    app.with_conn(|c| hubgate::banking::models::account(c, id)).unwrap_or_else(|e| panic!("{e}"))
}

fn start_of_month() -> chrono::NaiveDateTime {
    hubgate::db::now() - chrono::Duration::days(2)
}

/// A merchant owning a business, signed in.
async fn owner(app: &TestApp, email: &str, name: &str) -> (Browser, i64) {
    let user = app.create_merchant(email);
    let bid = app.create_business(&user, name);
    (app.login(email).await, bid)
}

/// The whole official link in the browser: keys, the bank's consent, back to our
/// callback, the sub-account choice. Returns the linked account id.
async fn link_official(app: &TestApp, bank: &FakeBank, b: &Browser, bid: i64, pick: &str) -> i64 {
    let page = b.get(&format!("/app/b/{bid}/connect/970448?agree=1")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let redirect = format!("{}/callback/handler/OCB", app.state.config.base_url);
    assert!(page.body.contains(&redirect), "the redirect URL to enter at the bank is shown");
    assert!(page.body.contains("Accounts &amp; Transaction Information"), "OCB's onboarding steps are shown");
    let go = b
        .post(
            &format!("/app/b/{bid}/connect/970448/official"),
            &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
        )
        .await;
    let at_bank = go.location.unwrap_or_else(|| panic!("no redirect to the bank: {}", go.body));
    assert!(at_bank.starts_with(&bank.base), "{at_bank}");
    assert!(at_bank.contains("code_challenge_method=S256") && at_bank.contains("state="));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let consent = http.get(&at_bank).send().await.unwrap_or_else(|e| panic!("{e}"));
    let back = consent.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let path = back.strip_prefix(&app.state.config.base_url).unwrap_or_else(|| panic!("{back}")).to_string();
    let done = b.get(&path).await;
    let choose = done.location.unwrap_or_else(|| panic!("callback: {}", done.body));
    assert!(choose.contains("/connections/"), "{choose}");
    let page = b.get(&choose).await;
    assert!(page.body.contains("0071000000001") && page.body.contains("0071000000002"), "{}", page.body);
    let finished = b.post(&choose, &[("account", pick), ("days", "30")]).await;
    assert_eq!(finished.location.as_deref(), Some(format!("/app/b/{bid}/accounts").as_str()), "{}", finished.body);
    app.with_conn(|c| {
        bank_accounts::table
            .filter(bank_accounts::business_id.eq(bid))
            .filter(bank_accounts::external_id.eq(pick))
            .select(bank_accounts::id)
            .first(c)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Links account 0801234567 at MB as a push source in the browser; returns the push
/// URL and key the page shows once.
pub(crate) async fn connect_push(b: &Browser, bid: i64) -> (String, String) {
    b.get(&format!("/app/b/{bid}/connect/970422?agree=1")).await;
    let made = b
        .post(
            &format!("/app/b/{bid}/connect/970422/push"),
            &[("account_number", "0801234567"), ("account_name", "TRAN VAN TAM")],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let grab = |id: &str| {
        made.body.split(&format!("id=\"{id}\">")).nth(1).and_then(|s| s.split('<').next()).unwrap_or("").to_string()
    };
    (grab("push-url"), grab("push-secret"))
}

fn two_accounts(bank: &FakeBank, n: usize) {
    bank.with(|s| {
        s.accounts = vec![
            ("acc-1".into(), "0071000000001".into(), "CONG TY PHO VIET".into(), 5_000_000),
            ("acc-2".into(), "0071000000002".into(), "CONG TY PHO VIET".into(), 0),
        ];
        s.add_txs("acc-1", "FT", n, start_of_month());
    });
}

bank_test!(official_open_api_link_and_sync, |app, bank| {
    two_accounts(&bank, 250);
    let (b, bid) = owner(&app, "chu@phoviet.vn", "Phở Việt").await;
    let aid = link_official(&app, &bank, &b, bid, "acc-1").await;
    let queued: i64 =
        app.with_conn(|c| jobs::table.filter(jobs::kind.eq("bank.sync")).count().get_result(c)).unwrap_or(-1);
    assert_eq!(queued, 1, "the first sync is queued with the link");
    // A second account the merchant did not pick is not linked.
    assert_eq!(
        app.with_conn(|c| bank_accounts::table.filter(bank_accounts::business_id.eq(bid)).count().get_result::<i64>(c))
            .unwrap_or(-1),
        1
    );

    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 250);
    let a = account_row(&app, aid);
    assert_eq!(
        (a.connect_status.as_str(), a.sync_cursor.as_deref(), a.balance),
        ("connected", Some("250"), Some(5_000_000))
    );
    let next = a.next_sync_at.map(|t| (t - hubgate::db::now()).num_seconds()).unwrap_or(0);
    assert!((290..=300).contains(&next), "the trial plan syncs every 5 minutes, next in {next} s");
    let usage: i64 = app.with_conn(|c| hubgate::business::service::usage_this_month(c, bid)).unwrap_or(-1);
    assert_eq!(usage, 250);

    // The client secret and the tokens are stored sealed only.
    let (creds, tokens): (Option<String>, Option<String>) = app
        .with_conn(|c| {
            bank_connections::table
                .select((bank_connections::credentials_sealed, bank_connections::tokens_sealed))
                .first(c)
        })
        .unwrap_or_default();
    let stored = format!("{creds:?}{tokens:?}");
    assert!(!stored.contains(CLIENT_SECRET) && !stored.contains("access-") && !stored.contains("refresh-"), "{stored}");

    // New transactions at the bank: the next sync starts at the saved cursor.
    bank.with(|s| s.add_txs("acc-1", "FT", 30, start_of_month()));
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 280);
    let log = bank.with(|s| s.requests.clone());
    assert_eq!(log.last().map(String::as_str), Some("tx acc-1 Some(\"250\")"), "{log:?}");
    let page = b.get(&format!("/app/b/{bid}/accounts")).await;
    assert!(page.body.contains("lần đồng bộ tiếp theo lúc") && page.body.contains("5.000.000 đ"), "{}", page.body);
    // Re-linking the same account adds nothing: the page shows it as linked.
});

bank_test!(expired_tokens_refresh_and_broken_consent_asks_for_relogin, |app, bank| {
    two_accounts(&bank, 20);
    let (b, bid) = owner(&app, "chu@lau.vn", "Lẩu").await;
    let aid = link_official(&app, &bank, &b, bid, "acc-1").await;
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    // The access token expires: refreshed (with rotation), then the sync goes on.
    bank.with(|s| {
        s.expire_tokens();
        s.add_txs("acc-1", "FT", 5, start_of_month());
    });
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 25);
    assert_eq!(bank.with(|s| (s.refreshes, s.refresh.len())), (1, 1), "one refresh; the old refresh token is gone");
    // The bank refuses to refresh: the account needs a new login, the owner is told once.
    bank.with(|s| {
        s.expire_tokens();
        s.reject_refresh = true;
    });
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    let a = account_row(&app, aid);
    assert_eq!(a.connect_status, "relogin");
    assert_eq!(count(&app, aid), 25, "nothing already synced is lost");
    let mails: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_outbox;
            mail_outbox::table.filter(mail_outbox::subject.like("Cần kết nối lại%")).count().get_result(c)
        })
        .unwrap_or(-1);
    assert_eq!(mails, 1);
    let page = b.get(&format!("/app/b/{bid}/accounts")).await;
    assert!(page.body.contains("Cần kết nối lại") && page.body.contains("Kết nối lại"), "{}", page.body);
    // Linking again re-attaches the same account (no twin), history kept, syncing again.
    bank.with(|s| {
        s.reject_refresh = false;
        s.add_txs("acc-1", "FT", 2, start_of_month());
    });
    let again = link_official(&app, &bank, &b, bid, "acc-1").await;
    assert_eq!(again, aid);
    let rows: i64 = app
        .with_conn(|c| bank_accounts::table.filter(bank_accounts::business_id.eq(bid)).count().get_result(c))
        .unwrap_or(-1);
    assert_eq!(rows, 1);
    assert_eq!(account_row(&app, aid).connect_status, "connected");
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 27);
});

bank_test!(rate_limits_and_a_page_failing_midway, |app, bank| {
    two_accounts(&bank, 250);
    let (b, bid) = owner(&app, "chu@com.vn", "Cơm").await;
    let aid = link_official(&app, &bank, &b, bid, "acc-1").await;
    // 429 with Retry-After: nothing stored, the wait is kept and shown.
    bank.with(|s| s.rate_limit = 1);
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    let a = account_row(&app, aid);
    assert_eq!(count(&app, aid), 0);
    let wait = a.rate_limited_until.map(|t| (t - hubgate::db::now()).num_seconds()).unwrap_or(0);
    assert!((110..=120).contains(&wait), "{wait}");
    assert_eq!(a.rate_limit_source.as_deref(), Some("bank"));
    assert!(b.get(&format!("/app/b/{bid}/accounts")).await.body.contains("ngân hàng yêu cầu chờ đến"));
    // The third page fails: two pages are kept, the cursor is not moved.
    bank.with(|s| s.fail_at = Some(200));
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 200);
    assert_eq!(account_row(&app, aid).sync_cursor, None);
    // The bank is back: the sync starts over from the saved cursor; nothing doubles.
    bank.with(|s| s.fail_at = None);
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 250);
    assert_eq!(account_row(&app, aid).sync_cursor.as_deref(), Some("250"));
});

bank_test!(two_workers_syncing_one_account_store_each_transaction_once, |app, bank| {
    two_accounts(&bank, 400);
    bank.with(|s| s.page_size = 50);
    let (b, bid) = owner(&app, "chu@bun.vn", "Bún").await;
    let aid = link_official(&app, &bank, &b, bid, "acc-1").await;
    let (x, y) = tokio::join!(sync(&app, aid), sync(&app, aid));
    x.unwrap_or_else(|e| panic!("{e}"));
    y.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), 400);
    let usage: i64 = app.with_conn(|c| hubgate::business::service::usage_this_month(c, bid)).unwrap_or(-1);
    assert_eq!(usage, 400, "each transaction counted once against the plan");
});

bank_test!(rpa_agent_login_and_sessions, |app, bank| {
    two_accounts(&bank, 120);
    let (b, bid) = owner(&app, "chu@banh.vn", "Bánh").await;
    // Vietcombank (no official API here): the agent logs in.
    let page = b.get(&format!("/app/b/{bid}/connect/970436?agree=1")).await;
    assert!(page.body.contains("Kết nối trước – bankHub sau") && !page.body.contains("id=\"official\""));
    let wrong =
        b.post(&format!("/app/b/{bid}/connect/970436/rpa"), &[("username", "0912345678"), ("password", "sai")]).await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("Sai tên đăng nhập hoặc mật khẩu"), "{}", wrong.body);
    assert_eq!(
        app.with_conn(|c| bank_connections::table.count().get_result::<i64>(c)).unwrap_or(-1),
        0,
        "a refused login keeps nothing"
    );
    let ok = b
        .post(&format!("/app/b/{bid}/connect/970436/rpa"), &[("username", "0912345678"), ("password", BANK_PASSWORD)])
        .await;
    let choose = ok.location.unwrap_or_else(|| panic!("{}", ok.body));
    b.get(&choose).await;
    b.post(&choose, &[("account", "acc-1"), ("account", "acc-2"), ("days", "7")]).await;
    let ids: Vec<i64> = app
        .with_conn(|c| {
            bank_accounts::table
                .filter(bank_accounts::business_id.eq(bid))
                .order(bank_accounts::id)
                .select(bank_accounts::id)
                .load(c)
        })
        .unwrap_or_default();
    assert_eq!(ids.len(), 2);
    sync(&app, ids[0]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, ids[0]), 120);
    let sealed: Option<String> = app
        .with_conn(|c| bank_connections::table.select(bank_connections::credentials_sealed).first(c))
        .unwrap_or(None);
    assert!(sealed.is_some_and(|s| !s.contains(BANK_PASSWORD) && !s.contains("0912345678")));
    // The agent forgot the session: hubgate logs in again with the sealed login.
    bank.with(|s| {
        s.sessions.clear();
        s.add_txs("acc-1", "FT", 3, start_of_month());
    });
    sync(&app, ids[0]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, ids[0]), 123);
    assert_eq!(bank.with(|s| s.logins), 3, "wrong, right, and the silent re-login");
    let _ = AGENT_TOKEN;
});

bank_test!(demo_account_tombstones_and_pending_rows, |app, bank| {
    let _ = &bank;
    let (b, bid) = owner(&app, "chu@demo.vn", "Demo").await;
    let page = b.get(&format!("/app/b/{bid}/connect")).await;
    assert!(page.body.contains("Vietcombank") && page.body.contains("OCB"), "the bank list is offered");
    let go = b.post(&format!("/app/b/{bid}/connect-demo"), &[]).await;
    let choose = go.location.unwrap_or_else(|| panic!("{}", go.body));
    let page = b.get(&choose).await;
    let ids: Vec<String> = page
        .body
        .match_indices("value=\"demo-")
        .map(|(i, _)| page.body[i + 7..].split('"').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{}", page.body);
    b.post(&choose, &[("account", &ids[0]), ("days", "7")]).await;
    let aid: i64 = app
        .with_conn(|c| {
            bank_accounts::table.filter(bank_accounts::business_id.eq(bid)).select(bank_accounts::id).first(c)
        })
        .unwrap_or(-1);
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    let n = count(&app, aid);
    assert!(n > 50, "a week of demo transactions: {n}");
    // Deleted by the user: it stays gone even when the whole history is read again.
    let victim: i64 = app
        .with_conn(|c| transactions::table.filter(transactions::account_id.eq(aid)).select(transactions::id).first(c))
        .unwrap_or(-1);
    let del = b.post(&format!("/app/b/{bid}/transactions/{victim}/delete"), &[]).await;
    assert_eq!(del.status, 303);
    app.with_conn(|c| {
        diesel::update(bank_accounts::table.find(aid)).set(bank_accounts::sync_cursor.eq(None::<String>)).execute(c)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    sync(&app, aid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&app, aid), n - 1);
    assert_eq!(b.get(&format!("/app/b/{bid}/transactions/{victim}")).await.status, 404);

    // A pending transaction re-issued by the bank under a new id is one transaction.
    let account = account_row(&app, aid);
    let tx = |id: &str, pending: bool, replaces: Option<&str>| IncomingTx {
        bank_tx_id: id.into(),
        amount: 75_000,
        description: "Thanh toán QR".into(),
        balance: None,
        occurred_at: hubgate::db::now(),
        pending,
        counter_account: String::new(),
        counter_name: String::new(),
        counter_bank_id: String::new(),
        counter_bank_name: String::new(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: String::new(),
        replaces: replaces.map(str::to_string),
    };
    let first = app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("P-1", true, None)], "sync"));
    assert_eq!(first.map(|a| a.new_ids.len()).ok(), Some(1));
    let posted = app
        .with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("POSTED-1", false, Some("P-1"))], "sync"));
    assert_eq!(posted.map(|a| (a.new_ids.len(), a.replaced)).ok(), Some((0, 1)));
    assert_eq!(count(&app, aid), n);
    // Two identical coffees with different bank ids are two transactions.
    let two = app.with_conn(|c| {
        hubgate::banking::sync::apply_page(c, &account, &[tx("C-1", false, None), tx("C-2", false, None)], "sync")
    });
    assert_eq!(two.map(|a| a.new_ids.len()).ok(), Some(2));
});

bank_test!(push_hooks_sepay_and_signed, |app, bank| {
    let _ = &bank;
    let (b, bid) = owner(&app, "chu@push.vn", "Push").await;
    let (url, secret) = connect_push(&b, bid).await;
    let path = url.strip_prefix(&app.state.config.base_url).unwrap_or_else(|| panic!("{url}")).to_string();
    let http = reqwest::Client::new();
    let post = |body: String, headers: Vec<(&'static str, String)>| {
        let mut r = http.post(format!("{}{path}", app.base)).header("content-type", "application/json").body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let sepay = r#"{"id":92704,"gateway":"MBBank","transactionDate":"2026-11-25 14:02:37","accountNumber":"0801234567","code":null,"content":"chuyen tien mua iphone","transferType":"in","transferAmount":2277000,"accumulated":19077000,"subAccount":null,"referenceCode":"MBVCB.3278907687","description":""}"#;
    let r =
        post(sepay.into(), vec![("authorization", format!("Apikey {secret}"))]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(body["data"]["new"], 1);
    let again =
        post(sepay.into(), vec![("authorization", format!("Apikey {secret}"))]).await.unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = again.json().await.unwrap_or_default();
    assert_eq!(
        (body["data"]["new"].as_i64(), body["data"]["known"].as_i64()),
        (Some(0), Some(1)),
        "a repeated push is a duplicate"
    );
    let forged =
        post(sepay.into(), vec![("authorization", "Apikey wrong".into())]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forged.status(), 401);
    // Our own format, HMAC-signed over the raw body.
    let ours = r#"{"transactions":[{"account_number":"0801234567","id":"MB-77","booking_time":"2026-11-25T15:00:00+07:00","amount":-50000,"description":"Phí dịch vụ"}]}"#;
    let sign = |key: &str| {
        use hmac::Mac;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(ours.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let bad = post(ours.into(), vec![("x-hubgate-signature", sign("not-the-secret"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status(), 401);
    let good = post(ours.into(), vec![("x-hubgate-signature", sign(&secret))]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(good.status(), 200);
    let unknown =
        r#"{"transactions":[{"account_number":"999","id":"X","booking_time":"2026-11-25T15:00:00+07:00","amount":1}]}"#;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    hmac::Mac::update(&mut mac, unknown.as_bytes());
    let sig = format!("sha256={}", hex::encode(hmac::Mac::finalize(mac).into_bytes()));
    let r = post(unknown.into(), vec![("x-hubgate-signature", sig)]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 422);
    let nobody = http
        .post(format!("{}/bank-hooks/no-such-key", app.base))
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nobody.status(), 401);
    let listed = b.get(&format!("/app/b/{bid}/transactions")).await;
    assert!(listed.body.contains("chuyen tien mua iphone") && listed.body.contains("+2.277.000 đ"), "{}", listed.body);
    assert!(listed.body.contains("-50.000 đ"));
});

bank_test!(transaction_list_filters_totals_and_exports, |app, bank| {
    let _ = &bank;
    let (b, bid) = owner(&app, "chu@loc.vn", "Lọc").await;
    let actor = Actor::system("test");
    let new_account = |number: &'static str| NewBankAccount {
        business_id: bid,
        bank_code: "ACB",
        bank_name: "ACB",
        account_number: number,
        account_name: "LOC",
        method: "demo",
        connect_status: "connected",
        created_at: hubgate::db::now(),
        connection_id: None,
        bank_bin: "970416",
        external_id: number,
        balance: None,
        sync_from: None,
        next_sync_at: None,
    };
    let a1 = app
        .with_conn(|c| hubgate::business::service::link_account(c, &actor, &new_account("111")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let a2 = app
        .with_conn(|c| hubgate::business::service::link_account(c, &actor, &new_account("222")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    // Days relative to today, so the default 31-day chart always covers them.
    let base = hubgate::fmt::local_date(hubgate::db::now()) - chrono::Duration::days(20);
    let local_day = |d: u32| base + chrono::Duration::days(i64::from(d) - 10);
    let day = |d: u32, h: u32| hubgate::fmt::local_midnight_utc(local_day(d)) + chrono::Duration::hours(i64::from(h));
    let tx = |id: &str, amount: i64, text: &str, at| IncomingTx {
        bank_tx_id: id.into(),
        amount,
        description: text.into(),
        balance: None,
        occurred_at: at,
        pending: false,
        counter_account: String::new(),
        counter_name: String::new(),
        counter_bank_id: String::new(),
        counter_bank_name: String::new(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: String::new(),
        replaces: None,
    };
    app.with_conn(|c| {
        hubgate::banking::sync::apply_page(
            c,
            &a1,
            &[
                tx("A", 120_000, "Nguyễn Thị Hoa trả tiền cà phê", day(10, 3)),
                tx("B", -45_000, "Mua đá viên", day(10, 4)),
                tx("C", 3_500_000, "Công ty Minh Long thanh toán tiệc", day(12, 5)),
            ],
            "sync",
        )?;
        hubgate::banking::sync::apply_page(c, &a2, &[tx("D", 99_000, "HOA chuyen khoan", day(15, 6))], "sync")
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    // A second business's transaction, to be excluded everywhere.
    let other = app.create_merchant("khac@loc.vn");
    let obid = app.create_business(&other, "Khác");
    let oa = app
        .with_conn(|c| {
            hubgate::business::service::link_account(
                c,
                &actor,
                &NewBankAccount { business_id: obid, ..new_account("333") },
            )
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    app.with_conn(|c| {
        hubgate::banking::sync::apply_page(c, &oa, &[tx("Z", 777_000, "Nguyễn Thị Hoa khác", day(10, 3))], "sync")
    })
    .unwrap_or_else(|e| panic!("{e:?}"));

    let list = |q: &str| {
        let (b, url) = (&b, format!("/app/b/{bid}/transactions?{q}"));
        async move { b.get(&url).await.body }
    };
    let all = list("").await;
    assert!(all.contains("id=\"tx-count\">4<") && all.contains("3.719.000 đ") && all.contains("-45.000 đ"), "{all}");
    assert!(!all.contains("Nguyễn Thị Hoa khác") && all.contains("<svg class=\"chart\""));
    // Folded text search: no diacritics, any case, on both databases.
    let hoa = list("q=nguyen+thi+hoa").await;
    assert!(hoa.contains("trả tiền cà phê") && !hoa.contains("HOA chuyen khoan") && hoa.contains("id=\"tx-count\">1<"));
    assert!(list("q=hoa").await.contains("id=\"tx-count\">2<"));
    let outs = list("direction=out").await;
    assert!(outs.contains("Mua đá viên") && !outs.contains("Minh Long"));
    let big = list("min=1.000.000").await;
    assert!(big.contains("Minh Long") && big.contains("id=\"tx-count\">1<"));
    let small = list("max=100000").await;
    assert!(small.contains("id=\"tx-count\">2<"), "45.000 out and 99.000 in");
    let range =
        list(&format!("from={}&to={}", local_day(11).format("%Y-%m-%d"), local_day(14).format("%Y-%m-%d"))).await;
    assert!(range.contains("Minh Long") && range.contains("id=\"tx-count\">1<"));
    let acc2 = list(&format!("account={}", a2.id)).await;
    assert!(acc2.contains("HOA chuyen khoan") && acc2.contains("id=\"tx-count\">1<"));
    let bad = b.get(&format!("/app/b/{bid}/transactions?from=hôm-qua")).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Ngày không hợp lệ"));

    let csv = reqwest_get(&b, &format!("/app/b/{bid}/transactions/export?q=hoa&format=csv")).await;
    let text = String::from_utf8_lossy(&csv);
    assert!(
        text.starts_with('\u{feff}')
            && text.contains("Nguyễn Thị Hoa trả tiền cà phê")
            && text.contains("HOA chuyen khoan")
    );
    assert_eq!(text.lines().count(), 3, "header and the two matching rows: {text}");
    let xlsx = reqwest_get(&b, &format!("/app/b/{bid}/transactions/export?format=xlsx")).await;
    use calamine::{DataType, Reader};
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx)).unwrap_or_else(|e| panic!("{e}"));
    let sheet = book.worksheet_range("Giao dịch").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sheet.height(), 5);
    let amounts: Vec<f64> = sheet.rows().skip(1).filter_map(|r| r.get(4).and_then(|c| c.as_f64())).collect();
    assert_eq!(amounts.iter().sum::<f64>(), 120_000.0 - 45_000.0 + 3_500_000.0 + 99_000.0);
    // Another business's transaction is not reachable by id.
    let foreign: i64 = app
        .with_conn(|c| transactions::table.filter(transactions::business_id.eq(obid)).select(transactions::id).first(c))
        .unwrap_or(-1);
    assert_eq!(b.get(&format!("/app/b/{bid}/transactions/{foreign}")).await.status, 404);
});

async fn reqwest_get(b: &Browser, path: &str) -> Vec<u8> {
    b.bytes(path).await
}

bank_test!(continue_on_the_phone, |app, bank| {
    let _ = &bank;
    let (b, bid) = owner(&app, "chu@qr.vn", "QR").await;
    let page = b.get(&format!("/app/b/{bid}/connect/970436?agree=1")).await;
    assert!(page.body.contains("<svg"), "a QR code is drawn on the server");
    let link = page
        .body
        .split("<code>")
        .filter_map(|s| s.split("</code>").next())
        .find(|s| s.contains("/link?token="))
        .unwrap_or_else(|| panic!("{}", page.body))
        .to_string();
    let path = link.strip_prefix(&app.state.config.base_url).unwrap_or_default().to_string();
    // Somebody else's phone gets nothing.
    app.create_merchant("nguoi-khac@qr.vn");
    let stranger = app.login("nguoi-khac@qr.vn").await;
    assert_eq!(stranger.get(&path).await.status, 422);
    // The owner's phone: signed in, it lands on the same step; once.
    let phone = app.login("chu@qr.vn").await;
    let opened = phone.get(&path).await;
    assert_eq!(opened.location.as_deref(), Some(format!("/app/b/{bid}/connect/970436?agree=1").as_str()));
    assert_eq!(phone.get(&path).await.status, 422, "single use");
});

#[test]
fn cli_refreshes_the_bank_list_from_vietqr_json() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("banks.json");
    std::fs::write(
        &file,
        r#"{"code":"00","data":[{"bin":"970416","code":"ACB","shortName":"ACB Mới","name":"Ngân hàng TMCP Á Châu"},{"bin":"970999","code":"NEW","shortName":"NewBank","name":"Ngân hàng Mới"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
            .args(args)
            .env("DATABASE_URL", format!("sqlite://{}/hub.db", dir.path().display()))
            .env("HUBGATE_DATA_DIR", dir.path())
            .env("HUBGATE_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run(&["banks", "import", &file.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 banks added, 1 updated"));
    let list = String::from_utf8_lossy(&run(&["banks", "list"]).stdout).to_string();
    assert!(list.contains("970416\tACB\tACB Mới\tacb_digi"), "Casso's code name is kept: {list}");
    assert!(list.contains("970999\tNEW\tNewBank"));
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, "bin,code,short_name,name\n12,X,Y,Z\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(!run(&["banks", "import", &broken.display().to_string()]).status.success());
}

// The API's pages and the transactions page's totals come from per-day counts and sums
// kept beside the rows: after inserts on both sides of local midnight, money in and out,
// a pending row re-posted on another day for another amount and deletions, every page
// (both orders), the total and each day's money equal a plain count and sum of the rows.
crate::db_test!(per_day_counts_page_exactly_like_the_rows, |app| {
    use hubgate::banking::models::{self, TxFilter};
    let (_, bid, account) = crate::notify::setup(&app).await;
    let today = hubgate::fmt::local_date(hubgate::db::now());
    let first = today - chrono::Duration::days(4);
    let mut rows = Vec::new();
    for i in 0..57i64 {
        let day = first + chrono::Duration::days(i % 5);
        // Minutes either side of local midnight, and mid-day.
        let at = hubgate::fmt::local_midnight_utc(day) + chrono::Duration::minutes([0, 1, 719, 1439][(i % 4) as usize]);
        let mut t = crate::notify::tx(&format!("D-{i}"), if i % 3 == 0 { -1_000 - i } else { 1_000 + i });
        t.occurred_at = at;
        rows.push(t);
    }
    let mut pending = crate::notify::tx("P-OLD", 5_000);
    pending.pending = true;
    pending.occurred_at = hubgate::fmt::local_midnight_utc(first) + chrono::Duration::hours(2);
    rows.push(pending);
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &rows, "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    // The bank re-posts the pending transaction two days later under its final id.
    let mut posted = crate::notify::tx("P-NEW", 5_500);
    posted.replaces = Some("P-OLD".into());
    posted.occurred_at =
        hubgate::fmt::local_midnight_utc(first + chrono::Duration::days(2)) + chrono::Duration::hours(3);
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[posted], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    // Two deletions; a second deletion of the same row changes nothing.
    let ids: Vec<i64> = app.with_conn(|c| {
        transactions::table
            .filter(transactions::bank_tx_id.like("D-1%"))
            .select(transactions::id)
            .order(transactions::id.asc())
            .limit(2)
            .load(c)
            .unwrap_or_default()
    });
    for id in [ids[0], ids[1], ids[1]] {
        app.with_conn(|c| models::tombstone(c, id, hubgate::db::now())).unwrap_or_else(|e| panic!("{e}"));
    }

    let from = first - chrono::Duration::days(1);
    let plain = TxFilter {
        business_id: bid,
        from: Some(hubgate::fmt::local_midnight_utc(from)),
        to: Some(hubgate::fmt::local_midnight_utc(today + chrono::Duration::days(1))),
        ..Default::default()
    };
    let expected_total = app.with_conn(|c| models::count(c, &plain)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(expected_total, 56, "57 + the re-posted one - 2 deleted");
    for desc in [false, true] {
        for page in 0..10 {
            let (total, got) = app
                .with_conn(|c| models::page_by_days(c, bid, from, today, page * 7, 7, desc))
                .unwrap_or_else(|e| panic!("{e}"));
            let want =
                app.with_conn(|c| models::page_sorted(c, &plain, page * 7, 7, desc)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(total, expected_total);
            let ids = |v: &[models::Transaction]| v.iter().map(|t| t.id).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want), "page {page}, desc {desc}");
        }
    }
    // A window of one day counts that day only, the re-posted row on its new day.
    let day2 = first + chrono::Duration::days(2);
    let (n, _) =
        app.with_conn(|c| models::page_by_days(c, bid, day2, day2, 0, 100, false)).unwrap_or_else(|e| panic!("{e}"));
    let one_day = TxFilter {
        from: Some(hubgate::fmt::local_midnight_utc(day2)),
        to: Some(hubgate::fmt::local_midnight_utc(day2 + chrono::Duration::days(1))),
        ..plain.clone()
    };
    assert_eq!(n, app.with_conn(|c| models::count(c, &one_day)).unwrap_or_else(|e| panic!("{e}")));
    // Each day's count and money, and the whole range's, as the rows sum them.
    let sums = app.with_conn(|c| models::day_totals(c, bid, Some(from), Some(today))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sums.len(), 5, "{sums:?}");
    for (day, n, money_in, money_out) in &sums {
        let f = TxFilter {
            from: Some(hubgate::fmt::local_midnight_utc(*day)),
            to: Some(hubgate::fmt::local_midnight_utc(*day + chrono::Duration::days(1))),
            ..plain.clone()
        };
        let want = app.with_conn(|c| models::totals(c, &f)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((*n, *money_in, *money_out), want, "{day}");
    }
    let all = app.with_conn(|c| models::day_totals(c, bid, None, None)).unwrap_or_else(|e| panic!("{e}"));
    let summed = all.iter().fold((0, 0, 0), |t, d| (t.0 + d.1, t.1 + d.2, t.2 + d.3));
    let want = app.with_conn(|c| models::totals(c, &plain)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summed, want);
    assert!(want.1 > 0 && want.2 < 0, "money both ways: {want:?}");
});
