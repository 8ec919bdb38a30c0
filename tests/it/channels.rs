//! Zalo OA, Telegram and e-mail notifications, end to end: the merchant's pages, the
//! real worker, and one local HTTP server speaking Zalo's OAuth, Graph and OA APIs
//! (single-use refresh tokens, scripted error codes) and Telegram's Bot API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use hubgate::db::schema::{deliveries, integration_recipients, integrations, jobs, zalo_events, zalo_tokens};
use sha2::Digest;

use crate::notify::{setup, tx, work_until};
use crate::support::TestApp;

const APP_ID: &str = "4318000000000000001";
const APP_SECRET: &str = "zalo-app-secret";
const OA_SECRET: &str = "zalo-oa-secret";
const BOT: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

#[derive(Default)]
struct Fake {
    /// The refresh token Zalo would accept now (single use).
    refresh: String,
    access: String,
    refreshes: usize,
    refused_refreshes: usize,
    /// Error codes to answer the next sends to a user, in order; then 0.
    script: HashMap<String, Vec<i64>>,
    /// (user id, text) of every message Zalo accepted.
    zalo_sent: Vec<(String, String)>,
    /// (chat id, text) of every message Telegram accepted.
    telegram_sent: Vec<(String, String)>,
}

type Shared = web::Data<Arc<Mutex<Fake>>>;

fn lock(s: &Arc<Mutex<Fake>>) -> std::sync::MutexGuard<'_, Fake> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

async fn oa_token(s: Shared, req: HttpRequest, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let mut f = lock(&s);
    let secret_ok = req.headers().get("secret_key").and_then(|v| v.to_str().ok()) == Some(APP_SECRET);
    let given = form.get("refresh_token").cloned().unwrap_or_default();
    if !secret_ok || form.get("app_id").map(String::as_str) != Some(APP_ID) || given != f.refresh {
        f.refused_refreshes += 1;
        return HttpResponse::Ok().json(serde_json::json!({
            "error": -14014, "error_name": "Invalid refresh token", "error_description": "refresh token is invalid or used"
        }));
    }
    f.refreshes += 1;
    f.access = format!("AT{}", f.refreshes);
    f.refresh = format!("RT{}", f.refreshes);
    HttpResponse::Ok().json(serde_json::json!({
        "access_token": f.access, "refresh_token": f.refresh, "expires_in": "90000"
    }))
}

async fn user_token(form: web::Form<HashMap<String, String>>) -> HttpResponse {
    if form.get("code").map(String::as_str) == Some("good-code")
        && form.get("code_verifier").is_some_and(|v| v.len() >= 43)
    {
        HttpResponse::Ok().json(serde_json::json!({ "access_token": "user-at", "expires_in": "3600" }))
    } else {
        HttpResponse::Ok().json(serde_json::json!({ "error": -14002, "error_name": "Invalid code" }))
    }
}

async fn me(req: HttpRequest) -> HttpResponse {
    if req.headers().get("access_token").and_then(|v| v.to_str().ok()) == Some("user-at") {
        HttpResponse::Ok()
            .json(serde_json::json!({ "id": "owner-1", "name": "Chủ Quán Phở", "error": 0, "message": "Success" }))
    } else {
        HttpResponse::Ok().json(serde_json::json!({ "error": -501, "message": "invalid access token" }))
    }
}

async fn send(s: Shared, req: HttpRequest, body: web::Json<serde_json::Value>) -> HttpResponse {
    let mut f = lock(&s);
    let token = req.headers().get("access_token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if token.is_empty() || token != f.access {
        return HttpResponse::Ok().json(serde_json::json!({ "error": -216, "message": "Access token is invalid" }));
    }
    let user = body["recipient"]["user_id"].as_str().unwrap_or("").to_string();
    let code = f.script.get_mut(&user).and_then(|v| if v.is_empty() { None } else { Some(v.remove(0)) }).unwrap_or(0);
    if code != 0 {
        return HttpResponse::Ok().json(serde_json::json!({ "error": code, "message": format!("scripted {code}") }));
    }
    f.zalo_sent.push((user.clone(), body["message"]["text"].as_str().unwrap_or("").to_string()));
    HttpResponse::Ok().json(serde_json::json!({
        "error": 0, "message": "Success", "data": { "message_id": format!("m{}", f.zalo_sent.len()), "user_id": user }
    }))
}

async fn telegram(s: Shared, path: web::Path<String>, body: web::Json<serde_json::Value>) -> HttpResponse {
    if path.as_str() != format!("bot{BOT}") {
        return HttpResponse::Unauthorized()
            .json(serde_json::json!({ "ok": false, "error_code": 401, "description": "Unauthorized" }));
    }
    let chat = body["chat_id"].as_str().map(str::to_string).unwrap_or_else(|| body["chat_id"].to_string());
    if chat == "-403" {
        return HttpResponse::Forbidden()
            .json(serde_json::json!({ "ok": false, "error_code": 403, "description": "Forbidden: bot was kicked from the group chat" }));
    }
    lock(&s).telegram_sent.push((chat, body["text"].as_str().unwrap_or("").to_string()));
    HttpResponse::Ok().json(serde_json::json!({ "ok": true, "result": { "message_id": 1 } }))
}

struct Server {
    base: String,
    state: Arc<Mutex<Fake>>,
}

impl Server {
    async fn start() -> Server {
        let state = Arc::new(Mutex::new(Fake { refresh: "RT0".into(), ..Default::default() }));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v4/oa/access_token", web::post().to(oa_token))
                .route("/v4/access_token", web::post().to(user_token))
                .route("/v2.0/me", web::get().to(me))
                .route("/v3.0/oa/message/cs", web::post().to(send))
                .route("/{bot}/sendMessage", web::post().to(telegram))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap_or_else(|e| panic!("{e}"));
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        Server { base: format!("http://{addr}"), state }
    }

    fn zalo_to(&self, user: &str) -> Vec<String> {
        lock(&self.state).zalo_sent.iter().filter(|(u, _)| u == user).map(|(_, t)| t.clone()).collect()
    }

    fn telegram_to(&self, chat: &str) -> Vec<String> {
        lock(&self.state).telegram_sent.iter().filter(|(c, _)| c == chat).map(|(_, t)| t.clone()).collect()
    }
}

macro_rules! channel_test {
    ($name:ident, |$app:ident, $srv:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run(backend: hubgate::db::Backend) {
                let $srv = Server::start().await;
                let base = $srv.base.clone();
                let Some($app) = TestApp::start_with(backend, |c| {
                    c.zalo = hubgate::config::ZaloConfig {
                        app_id: APP_ID.into(),
                        app_secret: APP_SECRET.into(),
                        oa_secret: OA_SECRET.into(),
                        refresh_token: "RT0".into(),
                        oauth_url: base.clone(),
                        openapi_url: base.clone(),
                        graph_url: base.clone(),
                    };
                    c.telegram_api_url = base.clone();
                })
                .await
                else {
                    return;
                };
                $body
            }

            crate::on_both_backends!(run);
        }
    };
}

/// Posts an OA event as Zalo would: signed over the raw body.
async fn oa_event(app: &TestApp, body: serde_json::Value, sign_with: &str) -> u16 {
    let raw = body.to_string();
    let mut h = sha2::Sha256::new();
    h.update(body["app_id"].as_str().unwrap_or("").as_bytes());
    h.update(raw.as_bytes());
    h.update(body["timestamp"].as_str().unwrap_or("").as_bytes());
    h.update(sign_with.as_bytes());
    let mac = hex::encode(h.finalize());
    reqwest::Client::new()
        .post(format!("{}/zalo/webhook", app.base))
        .header("content-type", "application/json")
        .header("X-ZEvent-Signature", format!("mac={mac}"))
        .body(raw)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn text_event(sender: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "app_id": APP_ID,
        "sender": { "id": sender },
        "recipient": { "id": "oa-1" },
        "user_id_by_app": format!("app-{sender}"),
        "event_name": "user_send_text",
        "message": { "text": text, "msg_id": format!("msg-{sender}-{text}") },
        "timestamp": "1764100000000",
    })
}

fn unsent_replies(app: &TestApp) -> i64 {
    use hubgate::db::schema::zalo_replies;
    app.with_conn(|c| zalo_replies::table.filter(zalo_replies::sent_at.is_null()).count().get_result(c)).unwrap_or(-1)
}

fn unprocessed(app: &TestApp) -> i64 {
    app.with_conn(|c| zalo_events::table.filter(zalo_events::processed_at.is_null()).count().get_result(c))
        .unwrap_or(-1)
}

channel_test!(zalo_setup_invites_and_notifications, |app, srv| {
    let (b, bid, account) = setup(&app).await;
    let aid = account.id.to_string();
    let catalogue = b.get(&format!("/app/b/{bid}/integrations")).await;
    assert!(catalogue.body.contains("id=\"add-zalo\""), "{}", catalogue.body);

    // 1. Banks → "Thiết lập Zalo OA nhận dữ liệu".
    let step = b
        .post(
            &format!("/app/b/{bid}/integrations/zalo/banks"),
            &[("name", "Quầy thu"), ("account", &aid), ("income_only", "1")],
        )
        .await;
    assert_eq!(step.location.as_deref(), Some(format!("/app/b/{bid}/integrations/zalo/account").as_str()));
    // 2. Not logged in with Zalo yet: the button; Save is refused before a test.
    let page = b.get(&format!("/app/b/{bid}/integrations/zalo/account")).await;
    assert!(page.body.contains("Đăng nhập bằng Zalo") && !page.body.contains("id=\"zalo-continue\""), "{}", page.body);
    let login = b.get(&format!("/app/b/{bid}/integrations/zalo/login")).await;
    let to = login.location.clone().unwrap_or_default();
    assert!(
        to.starts_with(&format!("{}/v4/permission?", srv.base)) && to.contains(&format!("app_id={APP_ID}")),
        "{to}"
    );
    let url = reqwest::Url::parse(&to).unwrap_or_else(|e| panic!("{e}"));
    let state = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.to_string()).unwrap_or_default();
    // A forged state logs nobody in.
    let forged = b.get("/app/zalo/callback?code=good-code&state=forged").await;
    assert_eq!(forged.location.as_deref(), Some("/app"));
    let login = b.get(&format!("/app/b/{bid}/integrations/zalo/login")).await;
    let url = reqwest::Url::parse(login.location.as_deref().unwrap_or("")).unwrap_or_else(|e| panic!("{e}"));
    let state2 = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.to_string()).unwrap_or_default();
    assert_ne!(state, state2);
    let back = b.get(&format!("/app/zalo/callback?code=good-code&state={state2}")).await;
    assert_eq!(back.location.as_deref(), Some(format!("/app/b/{bid}/integrations/zalo/account").as_str()));
    let page = b.get(&format!("/app/b/{bid}/integrations/zalo/account")).await;
    assert!(
        page.body.contains("Chủ Quán Phở") && page.body.contains("Đăng nhập bằng tài khoản Zalo khác"),
        "{}",
        page.body
    );
    // 3. Fields, with the preview of what will be sent.
    let page = b.get(&format!("/app/b/{bid}/integrations/zalo/fields")).await;
    assert!(page.body.contains("id=\"message-preview\"") && page.body.contains("Số dư: 12.450.000 đ"), "{}", page.body);
    let preview = b.get(&format!("/app/b/{bid}/integrations/preview?field=amount&field=time")).await;
    assert!(preview.body.contains("Tiền vào: +125.000 đ") && !preview.body.contains("Số dư"), "{}", preview.body);
    b.post(&format!("/app/b/{bid}/integrations/zalo/fields"), &[("field", "amount"), ("field", "description")]).await;
    // 4. Save before a successful test is refused; the owner has not followed the OA yet.
    let early = b.post(&format!("/app/b/{bid}/integrations/zalo/save"), &[]).await;
    assert_eq!(early.location.as_deref(), Some(format!("/app/b/{bid}/integrations/zalo/test").as_str()));
    lock(&srv.state).script.insert("owner-1".into(), vec![-213]);
    let failed = b.post(&format!("/app/b/{bid}/integrations/zalo/test"), &[]).await;
    assert!(failed.body.contains("Chưa quan tâm Zalo OA") && failed.body.contains("disabled"), "{}", failed.body);
    let ok = b.post(&format!("/app/b/{bid}/integrations/zalo/test"), &[]).await;
    assert!(ok.body.contains("Đã gửi tin nhắn mẫu"), "{}", ok.body);
    assert_eq!(srv.zalo_to("owner-1").len(), 1, "the test message reached the owner's Zalo");
    assert_eq!(lock(&srv.state).refreshes, 1, "the first refresh token was spent once");
    let saved = b.post(&format!("/app/b/{bid}/integrations/zalo/save"), &[]).await;
    let show_path = saved.location.clone().unwrap_or_default();
    let show = b.get(&show_path).await;
    let code: String = app
        .with_conn(|c| integrations::table.select(integrations::invite_code).first::<Option<String>>(c))
        .ok()
        .flatten()
        .unwrap_or_default();
    assert_eq!(code.len(), 8);
    assert!(show.body.contains(&format!("/invite: {code}")) && show.body.contains("Chủ Quán Phở"), "{}", show.body);

    // The five replies of the seed. Forged signatures are refused and stored nowhere.
    assert_eq!(oa_event(&app, text_event("u-2", &format!("/invite: {code}")), "wrong-secret").await, 401);
    for (sender, text) in [
        ("u-2", "/invite ABC".to_string()),
        ("u-2", "/invite: ZZZZ9999".to_string()),
        ("u-2", format!("/invite: {}", code.to_lowercase())),
        ("u-2", format!("/invite: {code}")),
        ("owner-1", format!("/invite: {code}")),
        ("u-3", format!("/invite:{code}")),
        ("u-3", "cảm ơn shop".to_string()),
    ] {
        assert_eq!(oa_event(&app, text_event(sender, &text), OA_SECRET).await, 200);
    }
    assert_eq!(app.with_conn(|c| zalo_events::table.count().get_result::<i64>(c)).unwrap_or(-1), 7, "raw events kept");
    work_until(&app, || unprocessed(&app) == 0 && unsent_replies(&app) == 0).await;
    assert_eq!(
        srv.zalo_to("u-2"),
        vec![
            hubgate::notify::zalo::REPLY_SYNTAX.to_string(),
            hubgate::notify::zalo::REPLY_BAD_CODE.to_string(),
            hubgate::notify::zalo::REPLY_ADDED.to_string(),
            hubgate::notify::zalo::REPLY_ALREADY.to_string(),
        ],
        "one sender's messages answered in order"
    );
    let owner_got = srv.zalo_to("owner-1");
    assert_eq!(owner_got.len(), 4, "{owner_got:?}");
    assert_eq!(
        owner_got[1..].iter().filter(|t| t.contains("u-2") && t.contains("Quầy thu")).count(),
        1,
        "{owner_got:?}"
    );
    assert!(owner_got.contains(&hubgate::notify::zalo::REPLY_ALREADY.to_string()), "the owner is told he is the owner");
    assert_eq!(srv.zalo_to("u-3"), vec![hubgate::notify::zalo::REPLY_ADDED.to_string()]);

    // Remove u-3 with "x"; u-2 has not interacted for 7 days (-230).
    let rid: i64 = app
        .with_conn(|c| {
            integration_recipients::table
                .filter(integration_recipients::address.eq("u-3"))
                .select(integration_recipients::id)
                .first(c)
        })
        .unwrap_or(-1);
    b.post(&format!("{show_path}/recipients/{rid}/remove"), &[]).await;
    lock(&srv.state).script.insert("u-2".into(), vec![-230]);
    // The access token expired at Zalo's end: the next send refreshes (rotating) once.
    lock(&srv.state).access = "revoked".into();
    let sent_before = srv.zalo_to("owner-1").len();
    app.with_conn(|c| {
        hubgate::banking::sync::apply_page(c, &account, &[tx("Z-1", 250_000), tx("Z-OUT", -5_000)], "sync")
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let made: i64 = app.with_conn(|c| deliveries::table.count().get_result(c)).unwrap_or(-1);
    assert_eq!(made, 2, "income only: owner and u-2, not the removed u-3, not the outgoing one");
    work_until(&app, || {
        app.with_conn(|c| deliveries::table.filter(deliveries::status.eq("pending")).count().get_result::<i64>(c))
            .unwrap_or(1)
            == 0
    })
    .await;
    let owner_msgs = srv.zalo_to("owner-1");
    assert_eq!(owner_msgs.len(), sent_before + 1);
    let last = owner_msgs.last().cloned().unwrap_or_default();
    assert!(
        last.contains("Tiền vào: +250.000 đ") && last.contains("Giao dịch Z-1") && !last.contains("Số dư"),
        "{last}"
    );
    let (refreshes, refused) = {
        let f = lock(&srv.state);
        (f.refreshes, f.refused_refreshes)
    };
    assert_eq!((refreshes, refused), (2, 0), "one refresh, with the rotated token");
    let stored_generation: i64 =
        app.with_conn(|c| zalo_tokens::table.select(zalo_tokens::generation).first(c)).unwrap_or(-1);
    assert_eq!(stored_generation, 2);
    // u-2 is marked, shown to the owner, and not retried.
    let (status, note): (String, Option<String>) = app
        .with_conn(|c| {
            integration_recipients::table
                .filter(integration_recipients::address.eq("u-2"))
                .select((integration_recipients::status, integration_recipients::status_note))
                .first(c)
        })
        .unwrap_or_default();
    assert_eq!((status.as_str(), note.as_deref()), ("unreachable", Some("Không tương tác với OA trong 7 ngày")));
    let retries: i64 = app
        .with_conn(|c| {
            jobs::table.filter(jobs::kind.eq("notify.deliver")).filter(jobs::done_at.is_null()).count().get_result(c)
        })
        .unwrap_or(-1);
    assert_eq!(retries, 0, "no blind retries");
    let show = b.get(&show_path).await;
    assert!(
        show.body.contains("không gửi được: Không tương tác với OA trong 7 ngày") && show.body.contains("đã xóa"),
        "{}",
        show.body
    );
    // Writing to the OA again lifts the mark.
    oa_event(&app, text_event("u-2", "chào"), OA_SECRET).await;
    work_until(&app, || unprocessed(&app) == 0).await;
    let status: String = app
        .with_conn(|c| {
            integration_recipients::table
                .filter(integration_recipients::address.eq("u-2"))
                .select(integration_recipients::status)
                .first(c)
        })
        .unwrap_or_default();
    assert_eq!(status, "active");

    // Night time (-234) and the rate limit (-32) wait instead of failing.
    lock(&srv.state).script.insert("owner-1".into(), vec![-234]);
    lock(&srv.state).script.insert("u-2".into(), vec![-32]);
    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("Z-2", 1_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    work_until(&app, || {
        app.with_conn(|c| {
            hubgate::db::schema::delivery_attempts::table
                .filter(hubgate::db::schema::delivery_attempts::status_code.eq_any([-234i64, -32]))
                .count()
                .get_result::<i64>(c)
        })
        .unwrap_or(0)
            == 2
    })
    .await;
    let waits: Vec<chrono::NaiveDateTime> = app
        .with_conn(|c| {
            jobs::table
                .filter(jobs::kind.eq("notify.deliver"))
                .filter(jobs::done_at.is_null())
                .select(jobs::run_at)
                .load(c)
        })
        .unwrap_or_default();
    let now = hubgate::db::now();
    assert_eq!(waits.len(), 2, "both wait for a later attempt");
    assert!(waits.iter().all(|t| *t > now + chrono::Duration::seconds(50)), "{waits:?}");
});

channel_test!(telegram_and_email, |app, srv| {
    let (b, bid, account) = setup(&app).await;
    // A token Telegram refuses saves nothing, and is not echoed back.
    let bad = b
        .post(
            &format!("/app/b/{bid}/integrations/telegram"),
            &[("token", "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDzzz"), ("chats", "555")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body.contains("từ chối token") && !bad.body.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDzzz"),
        "{}",
        bad.body
    );
    let forged = b
        .post(
            &format!("/app/b/{bid}/integrations/telegram"),
            &[("token", BOT), ("chats", "555"), ("account", "999999")],
        )
        .await;
    assert_eq!(forged.status, 422, "an account of another business");
    let saved = b
        .post(
            &format!("/app/b/{bid}/integrations/telegram"),
            &[
                ("name", "Nhóm thu ngân"),
                ("token", BOT),
                ("chats", "555, -403"),
                ("field", "amount"),
                ("field", "balance"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(srv.telegram_to("555").len(), 1, "the test message");
    let tid: i64 = app
        .with_conn(|c| {
            integrations::table.filter(integrations::channel.eq("telegram")).select(integrations::id).first(c)
        })
        .unwrap_or(-1);
    let sealed: String = app
        .with_conn(|c| integrations::table.find(tid).select(integrations::secret_sealed).first(c))
        .unwrap_or_default();
    assert!(!sealed.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"), "the bot token is sealed at rest");
    let show = b.get(&format!("/app/b/{bid}/integrations/{tid}")).await;
    assert!(show.body.contains("Bot không được gửi"), "the kicked chat is shown: {}", show.body);

    // E-mail: one mail per transaction to two addresses, and a 15-minute digest.
    let each = b
        .post(
            &format!("/app/b/{bid}/integrations/email"),
            &[("addresses", "ke-toan@phoviet.vn, Chu@PhoViet.vn"), ("digest_minutes", "0"), ("field", "amount")],
        )
        .await;
    assert_eq!(each.status, 303, "{}", each.body);
    assert!(app.last_mail_to("ke-toan@phoviet.vn", "đã bật thông báo").is_some());
    let bad = b
        .post(&format!("/app/b/{bid}/integrations/email"), &[("addresses", "not-an-address"), ("digest_minutes", "0")])
        .await;
    assert_eq!(bad.status, 422);
    let odd =
        b.post(&format!("/app/b/{bid}/integrations/email"), &[("addresses", "a@b.vn"), ("digest_minutes", "7")]).await;
    assert_eq!(odd.status, 422, "a period the page never offered");
    b.post(
        &format!("/app/b/{bid}/integrations/email"),
        &[("addresses", "tong-hop@phoviet.vn"), ("digest_minutes", "15")],
    )
    .await;

    app.with_conn(|c| hubgate::banking::sync::apply_page(c, &account, &[tx("T-1", 77_000), tx("T-2", 3_000)], "sync"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    work_until(&app, || srv.telegram_to("555").len() == 3).await;
    let msgs = srv.telegram_to("555");
    // The two pushes are sent by concurrent jobs: they may arrive in either order.
    let t1 = msgs.iter().find(|m| m.contains("Mã GD: T-1")).cloned().unwrap_or_default();
    assert!(t1.contains("+77.000 đ") && t1.contains("Số dư: 1.000.000 đ") && !t1.contains("Nội dung"), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("Mã GD: T-2") && m.contains("+3.000 đ")), "{msgs:?}");
    assert!(srv.telegram_to("-403").is_empty());
    work_until(&app, || app.last_mail_to("chu@phoviet.vn", "Tiền vào 3.000 đ").is_some()).await;
    assert!(app.last_mail_to("ke-toan@phoviet.vn", "Tiền vào 77.000 đ").is_some());
    // The digest waits for the end of its period: bring it forward.
    assert!(app.last_mail_to("tong-hop@phoviet.vn", "giao dịch mới").is_none());
    let due = hubgate::db::now();
    let digests = app
        .with_conn(|c| {
            diesel::update(jobs::table.filter(jobs::kind.eq("notify.digest")).filter(jobs::done_at.is_null()))
                .set(jobs::run_at.eq(due))
                .execute(c)
        })
        .unwrap_or(0);
    assert_eq!(digests, 1, "one digest job for the period, however many transactions");
    work_until(&app, || app.last_mail_to("tong-hop@phoviet.vn", "giao dịch mới").is_some()).await;
    let digest = app.last_mail_to("tong-hop@phoviet.vn", "2 giao dịch mới").unwrap_or_default();
    assert!(digest.contains("Tiền vào: 80.000 đ") && digest.contains("T-1") && digest.contains("T-2"), "{digest}");
    let undelivered: i64 = app
        .with_conn(|c| deliveries::table.filter(deliveries::status.ne("delivered")).count().get_result(c))
        .unwrap_or(-1);
    assert_eq!(undelivered, 0, "the kicked chat was marked at the test call and gets no deliveries");
});
