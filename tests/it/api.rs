//! The Casso-compatible API, as a program written against Casso calls it: every
//! endpoint, the envelope on each error, keys of another business, revoked keys and
//! expired tokens, the rate limit, and a webhook created through the API firing on the
//! next transaction; both databases.

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use hubgate::audit::Actor;
use hubgate::business::models::NewBankAccount;
use hubgate::db::schema::{api_tokens, jobs};
use serde_json::{Value, json};

use crate::notify::{setup, tx, work_until};
use crate::support::TestApp;

struct Api {
    base: String,
    auth: String,
    client: reqwest::Client,
}

impl Api {
    fn new(app: &TestApp, auth: &str) -> Api {
        Api { base: app.base.clone(), auth: auth.to_string(), client: reqwest::Client::new() }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !self.auth.is_empty() {
            req = req.header("authorization", &self.auth);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        (status, v, retry)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.call("GET", path, None).await;
        (s, v)
    }
}

/// The envelope of an error: HTTP status, `error` code, and a non-empty message.
fn assert_error(got: &(u16, Value), status: u16, code: i64) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()) && got.1["data"].is_null(), "{}", got.1);
}

async fn new_key(b: &crate::support::Browser, bid: i64, name: &str) -> String {
    let page = b.post(&format!("/app/b/{bid}/api/keys"), &[("name", name)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body.split("id=\"api-key\">").nth(1).and_then(|s| s.split('<').next()).unwrap_or("").to_string()
}

receiver_test!(every_endpoint_as_a_casso_client_calls_it, |app, rx| {
    let (b, bid, account) = setup(&app).await;
    // Transactions: two recent, one 20 days old (outside the default 7 days).
    let mut old = tx("OLD-1", 5_000);
    old.occurred_at = hubgate::db::now() - chrono::Duration::days(20);
    let mut recent = vec![tx("R-1", 100_000), tx("R-2", -30_000), tx("R-3", 7_000)];
    for (i, t) in recent.iter_mut().enumerate() {
        t.occurred_at = hubgate::db::now() - chrono::Duration::hours(3 - i as i64);
    }
    recent.push(old);
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &recent, "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));

    // Another business with its own key and transaction.
    let other = app.create_merchant("khac@api.vn");
    let obid = app.create_business(&other, "Khác");
    let other_account = app
        .with_conn(|c| {
            hubgate::business::service::link_account(
                c,
                &Actor::system("test"),
                &NewBankAccount {
                    business_id: obid,
                    bank_code: "MB",
                    bank_name: "MB",
                    account_number: "9999",
                    account_name: "KHAC",
                    method: "push",
                    connect_status: "connected",
                    created_at: hubgate::db::now(),
                    connection_id: None,
                    bank_bin: "970422",
                    external_id: "9999",
                    balance: None,
                    sync_from: None,
                    next_sync_at: None,
                },
            )
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &other_account, &[tx("X-1", 1)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ob = app.login("khac@api.vn").await;
    let other_key = new_key(&ob, obid, "Khác").await;

    // Keys: created on the page, shown once, stored hashed.
    let key = new_key(&b, bid, "Phần mềm bán hàng").await;
    assert!(key.starts_with("hg_") && key.len() > 30, "{key}");
    let keys_page = b.get(&format!("/app/b/{bid}/api")).await;
    assert!(!keys_page.body.contains(&key) && keys_page.body.contains(&key[..9]), "only the prefix is shown again");
    let api = Api::new(&app, &format!("Apikey {key}"));

    // 401 in the envelope: no header, a wrong key, a bare wrong token.
    assert_error(&Api::new(&app, "").get("/v2/userInfo").await, 401, 401);
    assert_error(&Api::new(&app, "Apikey hg_wrong_key").get("/v2/userInfo").await, 401, 401);
    assert_error(&Api::new(&app, "not-a-token").get("/v2/userInfo").await, 401, 401);
    assert_error(&api.get("/v2/no-such-thing").await, 404, 404);

    // userInfo, exactly the seed's shape.
    let (s, v) = api.get("/v2/userInfo").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["error"].as_i64(), v["message"].as_str()), (Some(0), Some("success")));
    assert_eq!(v["data"]["user"]["email"], "chu@webhook.vn");
    assert_eq!(v["data"]["business"]["id"], bid);
    let acc = &v["data"]["bankAccs"][0];
    assert_eq!(acc["bank"]["bin"], 970416, "bin is a number: {acc}");
    assert!(acc["bank"]["codeName"].as_str().is_some_and(|c| !c.is_empty()), "{acc}");
    assert_eq!((acc["bankSubAccId"].as_str(), acc["connectStatus"].as_i64()), (Some("0071"), Some(1)));
    assert_eq!(acc["planStatus"], 1);
    assert_eq!(v["data"]["bankAccs"].as_array().map(Vec::len), Some(1), "not the other business's account");

    // Transactions: the default window, paging, sorting.
    let (_, v) = api.get("/v2/transactions").await;
    let d = &v["data"];
    assert_eq!(d["totalRecords"], 3, "the last 7 days only: {d}");
    assert_eq!((d["page"].as_i64(), d["pageSize"].as_i64()), (Some(1), Some(10)));
    assert_eq!(d["records"][0]["tid"], "R-1", "ASC by default");
    let r = &d["records"][1];
    assert_eq!(
        (r["amount"].as_i64(), r["cusum_balance"].as_i64(), r["cusumBalance"].as_i64()),
        (Some(-30_000), Some(1_000_000), Some(1_000_000))
    );
    assert_eq!(
        (r["corresponsiveName"].as_str(), r["corresponsiveBankId"].as_str()),
        (Some("NGUYEN VAN AN"), Some("970436"))
    );
    assert!(r["when"].as_str().is_some_and(|w| w.len() == 19 && w.as_bytes()[10] == b'T'), "{r}");
    assert_eq!(r["accountId"], account.id);
    let (_, v) = api.get("/v2/transactions?pageSize=2&page=2&sort=DESC").await;
    let d = &v["data"];
    assert_eq!(
        (d["totalPages"].as_i64(), d["prevPage"].as_i64(), d["nextPage"].as_i64()),
        (Some(2), Some(1), None),
        "{d}"
    );
    assert_eq!(d["records"][0]["tid"], "R-1", "the oldest last when DESC");
    let from = hubgate::fmt::local_date(hubgate::db::now() - chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
    let (_, v) = api.get(&format!("/v2/transactions?fromDate={from}")).await;
    assert_eq!(v["data"]["totalRecords"], 4);
    for bad in [
        "fromDate=26/11/2026",
        "pageSize=1000",
        "page=0",
        "page=abc",
        "sort=UP",
        "fromDate=2026-12-01&toDate=2026-11-01",
    ] {
        assert_error(&api.get(&format!("/v2/transactions?{bad}")).await, 422, 422);
    }
    let id = d["records"][0]["id"].as_i64().unwrap_or(-1);
    let (s, v) = api.get(&format!("/v2/transactions/{id}")).await;
    assert_eq!((s, v["data"]["tid"].as_str()), (200, Some("R-1")));
    assert_error(
        &Api::new(&app, &format!("Apikey {other_key}")).get(&format!("/v2/transactions/{id}")).await,
        404,
        404,
    );
    assert_error(&api.get("/v2/transactions/abc").await, 422, 422);

    // Accounts.
    let (_, v) = api.get("/v2/accounts").await;
    assert_eq!(
        (v["data"][0]["accountNumber"].as_str(), v["data"][0]["currency"].as_str()),
        (Some("0071"), Some("VND"))
    );
    let (s, _) = api.get(&format!("/v2/accounts/{}", account.id)).await;
    assert_eq!(s, 200);
    assert_error(&api.get(&format!("/v2/accounts/{}", other_account.id)).await, 404, 404);

    // Sync: an unknown account number, then no body at all (push accounts need none).
    assert_error(&api.call("POST", "/v2/sync", Some(json!({ "bank_acc_id": "123456" }))).await.pipe(), 404, 404);
    let (s, v, _) = api.call("POST", "/v2/sync", None).await;
    assert_eq!((s, v["error"].as_i64(), v["data"].is_null()), (200, Some(0), true), "{v}");
    assert_error(&api.call("POST", "/v2/sync", Some(json!(["x"]))).await.pipe(), 422, 422);
    // A body of whitespace is not "no body": it is malformed JSON (found by schemathesis).
    let resp = api
        .client
        .post(format!("{}/v2/sync", api.base))
        .header("authorization", &api.auth)
        .header("content-type", "application/json")
        .body("\n")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    assert_error(&(status, resp.json().await.unwrap_or(Value::Null)), 422, 422);
    let sync_jobs: i64 =
        app.with_conn(|c| jobs::table.filter(jobs::kind.eq("bank.sync")).count().get_result(c)).unwrap_or(-1);
    assert_eq!(sync_jobs, 0, "nothing to pull for a push account");

    // Webhooks: create (Casso's `webhook`, or `url` as some clients send), read, update, delete.
    let (s, v, _) = api
        .call(
            "POST",
            "/v2/webhooks",
            Some(json!({ "url": format!("{}/api-hook", rx.base), "secure_token": "tok-123", "income_only": true })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let wid = v["data"]["id"].as_i64().unwrap_or(-1);
    assert_eq!((v["data"]["channel"].as_str(), v["data"]["send_only_income"].as_i64()), (Some("webhook"), Some(1)));
    assert_eq!(rx.calls("/api-hook").len(), 1, "the test call");
    let (_, v) = api.get(&format!("/v2/webhooks/{wid}")).await;
    assert_eq!(v["data"]["param1"], format!("{}/api-hook", rx.base));
    assert_error(&Api::new(&app, &format!("Apikey {other_key}")).get(&format!("/v2/webhooks/{wid}")).await, 404, 12);
    assert_error(&api.call("POST", "/v2/webhooks", Some(json!({ "secure_token": "x" }))).await.pipe(), 422, 422);
    assert_error(&api.call("POST", "/v2/webhooks", Some(json!({ "webhook": "ftp://x" }))).await.pipe(), 422, 422);
    let (s, v, _) = api
        .call(
            "PUT",
            &format!("/v2/webhooks/{wid}"),
            Some(json!({ "webhook": format!("{}/api-hook2", rx.base), "income_only": false })),
        )
        .await;
    assert_eq!((s, v["data"]["send_only_income"].as_i64()), (200, Some(0)), "{v}");
    // It fires on the next transaction, with the token the client chose.
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("W-1", -4_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    work_until(&app, || rx.calls("/api-hook2").len() == 1).await;
    let (h, body) = &rx.calls("/api-hook2")[0];
    assert!(h.iter().any(|(k, v)| k == "secure-token" && v == "tok-123"), "{h:?}");
    assert!(body.contains("W-1"), "{body}");
    let (s, _, _) = api.call("DELETE", &format!("/v2/webhooks/{wid}"), None).await;
    assert_eq!(s, 200);
    assert_error(&api.get(&format!("/v2/webhooks/{wid}")).await, 404, 12);
    api.call("POST", "/v2/webhooks", Some(json!({ "webhook": format!("{}/by-url", rx.base) }))).await;
    api.call("POST", "/v2/webhooks", Some(json!({ "webhook": format!("{}/by-url", rx.base) }))).await;
    let path = format!("/v2/webhooks?webhook={}/by-url", rx.base);
    let (s, v, _) = api.call("DELETE", &path, None).await;
    assert_eq!((s, v["error"].as_i64()), (200, Some(0)));
    assert_error(&api.call("DELETE", &path, None).await.pipe(), 404, 12);

    // v1: a key for a 6-hour token, accepted bare; refused once expired or once the key is revoked.
    let (s, v, _) = Api::new(&app, "").call("POST", "/v1/token", Some(json!({ "code": key }))).await;
    assert_eq!(s, 200, "{v}");
    let token = v["data"]["access_token"].as_str().unwrap_or("").to_string();
    assert_eq!(v["data"]["expires_in"], 21_600);
    assert_eq!(Api::new(&app, &token).get("/v2/userInfo").await.0, 200);
    assert_eq!(Api::new(&app, &format!("Bearer {token}")).get("/v2/userInfo").await.0, 200);
    assert_error(
        &Api::new(&app, "").call("POST", "/v1/token", Some(json!({ "code": "hg_nope" }))).await.pipe(),
        401,
        401,
    );
    assert_error(&Api::new(&app, "").call("POST", "/v1/token", Some(json!({}))).await.pipe(), 422, 422);
    let past = hubgate::db::now() - chrono::Duration::minutes(1);
    app.with_conn(|c| diesel::update(api_tokens::table).set(api_tokens::expires_at.eq(past)).execute(c)).unwrap_or(0);
    assert_error(&Api::new(&app, &token).get("/v2/userInfo").await, 401, 401);
    let kid: i64 = app
        .with_conn(|c| {
            hubgate::db::schema::api_keys::table
                .filter(hubgate::db::schema::api_keys::business_id.eq(bid))
                .select(hubgate::db::schema::api_keys::id)
                .first(c)
        })
        .unwrap_or(-1);
    b.post(&format!("/app/b/{bid}/api/keys/{kid}/revoke"), &[]).await;
    assert_error(&api.get("/v2/userInfo").await, 401, 401);
    assert!(b.get(&format!("/app/b/{bid}/api")).await.body.contains("đã thu hồi"));

    // The rate limit: 429 in the envelope, with Retry-After.
    let other_api = Api::new(&app, &format!("Apikey {other_key}"));
    let mut limited = None;
    for _ in 0..(app.state.config.api_rate_per_second * hubgate::api::BURST_FACTOR + 400) {
        let got = other_api.call("GET", "/v2/userInfo", None).await;
        if got.0 == 429 {
            limited = Some(got);
            break;
        }
    }
    let (s, v, retry) = limited.unwrap_or_else(|| panic!("no 429 after a burst"));
    assert_error(&(s, v), 429, 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|n| n >= 1)));
});

/// `(status, body, retry)` → `(status, body)`.
trait Pipe {
    fn pipe(self) -> (u16, Value);
}

impl Pipe for (u16, Value, Option<String>) {
    fn pipe(self) -> (u16, Value) {
        (self.0, self.1)
    }
}
