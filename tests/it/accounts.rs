//! Setup, login, throttling, CSRF, account administration and their audit rows.

use diesel::prelude::*;
use hubgate::accounts::Role;
use hubgate::db::schema::{audit_log, users};

use crate::support::PASSWORD;

fn user_count(app: &crate::support::TestApp) -> i64 {
    app.with_conn(|c| users::table.count().get_result(c).unwrap_or(-1))
}

db_test!(setup_is_offered_once_then_gone, |app| {
    let b = app.browser();
    let home = b.get("/").await;
    assert!(home.redirects_to_login());
    let login = b.get("/login").await;
    assert_eq!(login.status, 303);
    assert_eq!(login.location.as_deref(), Some("/setup"));
    let form = b.get("/setup").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Khởi tạo hệ thống"));

    let mismatch = b
        .post(
            "/setup",
            &[
                ("email", "chu@ipos.vn"),
                ("name", "Chủ hệ thống"),
                ("password", PASSWORD),
                ("confirm", "khac-hoan-toan-1"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.body.contains("không khớp"));
    assert_eq!(user_count(&app), 0);

    let done = b
        .post(
            "/setup",
            &[("email", "Chu@IPOS.vn"), ("name", "Chủ hệ thống"), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let users_page = b.get("/admin/users").await;
    assert_eq!(users_page.status, 200);
    assert!(users_page.body.contains("chu@ipos.vn"), "e-mail is stored lower-cased");
    assert!(users_page.body.contains("Đã tạo tài khoản quản trị"));

    // Gone for everybody afterwards, and a replayed form changes nothing.
    assert_eq!(app.browser().get("/setup").await.status, 404);
    let again = b
        .post("/setup", &[("email", "ke-gian@ipos.vn"), ("name", "X"), ("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(user_count(&app), 1);
    let audited: i64 = app.with_conn(|c| {
        audit_log::table
            .filter(audit_log::entity_type.eq("user"))
            .filter(audit_log::action.eq("create"))
            .filter(audit_log::actor.eq("setup"))
            .count()
            .get_result(c)
            .unwrap_or(0)
    });
    assert_eq!(audited, 1);
});

db_test!(login_and_logout, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let b = app.browser();
    let wrong = b.login("sale@ipos.vn", "sai-mat-khau-123").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Email hoặc mật khẩu không đúng."));
    let unknown = b.login("khong-ton-tai@ipos.vn", "sai-mat-khau-123").await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("Email hoặc mật khẩu không đúng."), "same answer whether or not the account exists");

    let _ = b.get("/login?next=/account/password").await;
    let ok =
        b.post("/login", &[("email", "SALE@ipos.vn"), ("password", PASSWORD), ("next", "/account/password")]).await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location.as_deref(), Some("/account/password"));
    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Người dùng sale@ipos.vn"));

    let out = b.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(b.get("/").await.redirects_to_login());
});

db_test!(open_redirect_after_login_is_refused, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let b = app.browser();
    let _ = b.get("/login").await;
    let r = b.post("/login", &[("email", "sale@ipos.vn"), ("password", PASSWORD), ("next", "//evil.example/x")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/"));
});

db_test!(repeated_failures_make_the_account_wait, |app| {
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    let b = app.browser();
    for _ in 0..5 {
        assert_eq!(b.login("ketoan@ipos.vn", "doan-mo-mat-khau").await.status, 401);
    }
    // Now even the right password waits, with a clear message.
    let blocked = b.login("ketoan@ipos.vn", PASSWORD).await;
    assert_eq!(blocked.status, 429);
    assert!(
        blocked.body.contains("Bạn đã đăng nhập sai quá nhiều lần. Vui lòng thử lại sau 15 phút."),
        "{}",
        blocked.body
    );

    // An address that does not exist gets the very same treatment (no account probing).
    for _ in 0..5 {
        assert_eq!(b.login("ma@ipos.vn", "doan-mo-mat-khau").await.status, 401);
    }
    let ghost = b.login("ma@ipos.vn", "doan-mo-mat-khau").await;
    assert_eq!(ghost.status, 429);
    assert!(ghost.body.contains("Vui lòng thử lại sau"));

    // Other accounts are not affected by this account's lock.
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    assert_eq!(app.browser().login("sale@ipos.vn", PASSWORD).await.status, 303);
});

db_test!(forms_without_a_valid_csrf_token_are_refused, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("admin@ipos.vn").await;
    let before = user_count(&app);
    let fields = [("email", "moi@ipos.vn"), ("name", "Mới"), ("password", PASSWORD), ("role_sale", "on")];
    let missing = b.post_raw("/admin/users", &fields).await;
    assert_eq!(missing.status, 403);
    assert!(missing.body.contains("Biểu mẫu đã hết hạn hoặc không hợp lệ"));
    let mut forged = vec![("_csrf", "gia-mao")];
    forged.extend_from_slice(&fields);
    assert_eq!(b.post_raw("/admin/users", &forged).await.status, 403);
    assert_eq!(user_count(&app), before, "a refused form changes nothing");

    // Another session's token is not accepted either.
    let other = app.browser();
    let foreign = other.token().await;
    let mut stolen = vec![("_csrf", foreign.as_str())];
    stolen.extend_from_slice(&fields);
    assert_eq!(b.post_raw("/admin/users", &stolen).await.status, 403);

    let ok = b.post("/admin/users", &fields).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(user_count(&app), before + 1);
});

db_test!(admin_manages_users_and_every_change_is_audited, |app| {
    let admin = app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("admin@ipos.vn").await;
    let created = b
        .post(
            "/admin/users",
            &[
                ("email", "kythuat@ipos.vn"),
                ("name", "Nguyễn Văn Kỹ"),
                ("password", PASSWORD),
                ("role_technician", "on"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let tech = app.with_conn(|c| hubgate::accounts::models::find_by_email(c, "kythuat@ipos.vn")).ok().flatten();
    let tech = tech.unwrap_or_else(|| panic!("technician was not created"));
    assert_eq!(tech.roles, "technician");

    // Duplicate e-mail: a clear message, nothing created.
    let dup = b
        .post(
            "/admin/users",
            &[("email", "KYTHUAT@ipos.vn"), ("name", "Trùng"), ("password", PASSWORD), ("role_sale", "on")],
        )
        .await;
    assert_eq!(dup.status, 422);
    assert!(dup.body.contains("Email này đã được dùng"));

    let path = format!("/admin/users/{}", tech.id);
    let r = b.post(&path, &[("name", "Nguyễn Văn Kỹ"), ("role_technician", "on"), ("role_leader", "on")]).await;
    assert_eq!(r.status, 303);
    let tb = app.login("kythuat@ipos.vn").await;
    assert_eq!(tb.get("/").await.status, 200);
    // An old change time, so the page can show that locking the account moved it.
    let long_ago = chrono::NaiveDate::from_ymd_opt(2020, 1, 2).and_then(|d| d.and_hms_opt(3, 0, 0)).unwrap_or_default();
    app.with_conn(|c| diesel::update(users::table.find(tech.id)).set(users::updated_at.eq(long_ago)).execute(c))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(b.get(&path).await.body.contains("Cập nhật lúc 02/01/2020 10:00"));
    assert_eq!(b.post(&format!("{path}/disable"), &[]).await.status, 303);
    let locked = b.get(&path).await.body;
    assert!(locked.contains("Đã khóa"), "{locked}");
    let today = hubgate::fmt::LocalDate(hubgate::fmt::local_date(hubgate::db::now())).to_string();
    assert!(locked.contains(&format!("Cập nhật lúc {today} ")), "locking did not move the change time: {locked}");
    // Disabling ends the running session and blocks new logins.
    assert!(tb.get("/").await.redirects_to_login());
    let refused = app.browser().login("kythuat@ipos.vn", PASSWORD).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("Tài khoản này đã bị khóa"));
    assert_eq!(b.post(&format!("{path}/enable"), &[]).await.status, 303);
    assert_eq!(b.post(&format!("{path}/password"), &[("password", "mat-khau-moi-2026")]).await.status, 303);
    assert_eq!(app.browser().login("kythuat@ipos.vn", "mat-khau-moi-2026").await.status, 303);

    let actions: Vec<(String, Option<String>, Option<String>)> = app.with_conn(|c| {
        audit_log::table
            .filter(audit_log::entity_type.eq("user"))
            .filter(audit_log::entity_id.eq(tech.id.to_string()))
            .filter(audit_log::user_id.eq(admin.id))
            .order(audit_log::id.asc())
            .select((audit_log::action, audit_log::before_json, audit_log::after_json))
            .load(c)
            .unwrap_or_default()
    });
    let names: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["create", "update", "disable", "enable", "reset_password"]);
    let (_, before, after) = &actions[1];
    assert!(before.as_deref().unwrap_or("").contains("\"technician\""));
    assert!(
        after.as_deref().unwrap_or("").contains("technician,leader")
            || after.as_deref().unwrap_or("").contains("leader,technician")
    );
    assert!(!actions.iter().any(|a| a.2.as_deref().unwrap_or("").contains("argon2")), "no hash in the audit log");

    // The audit page shows and filters them.
    let page = b.get(&format!("/admin/audit?entity=user&entity_id={}&user={}", tech.id, admin.id)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("5 bản ghi"), "{}", page.body);
    assert!(page.body.contains("reset_password"));
    let none = b.get("/admin/audit?entity=user&from=2000-01-01&to=2000-01-02").await;
    assert!(none.body.contains("0 bản ghi"));
});

db_test!(the_last_admin_cannot_lock_the_door, |app| {
    let admin = app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("admin@ipos.vn").await;
    let path = format!("/admin/users/{}", admin.id);
    let demote = b.post(&path, &[("name", "Admin"), ("role_sale", "on")]).await;
    assert_eq!(demote.status, 422);
    assert!(demote.body.contains("Phải còn ít nhất một quản trị viên"));
    let selflock = b.post(&format!("{path}/disable"), &[]).await;
    assert_eq!(selflock.status, 422);
    assert!(selflock.body.contains("không thể tự khóa"));
    assert_eq!(b.get("/admin/users").await.status, 200, "still an admin");
});

db_test!(changing_the_password_ends_other_sessions, |app| {
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    let phone = app.login("leader@ipos.vn").await;
    let laptop = app.login("leader@ipos.vn").await;
    let wrong = laptop
        .post(
            "/account/password",
            &[("current", "khong-dung-123"), ("password", "mat-khau-moi-2026"), ("confirm", "mat-khau-moi-2026")],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("Mật khẩu hiện tại không đúng."));
    let ok = laptop
        .post(
            "/account/password",
            &[("current", PASSWORD), ("password", "mat-khau-moi-2026"), ("confirm", "mat-khau-moi-2026")],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(laptop.get("/").await.status, 200, "the session that changed it stays");
    assert!(phone.get("/").await.redirects_to_login(), "the other one ends");
    assert_eq!(app.browser().login("leader@ipos.vn", PASSWORD).await.status, 401);
    assert_eq!(app.browser().login("leader@ipos.vn", "mat-khau-moi-2026").await.status, 303);
});

/// On a clock the test moves: a minute before the end the session holds, a minute
/// after it is over and the login page says why.
#[actix_web::test]
async fn sessions_expire() {
    let app = crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
    let ttl = app.state.config.session_ttl;
    let minute = std::time::Duration::from_secs(60);
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let b = app.login("sale@ipos.vn").await;
    assert_eq!(b.get("/").await.status, 200);
    app.state.session_clock.advance(ttl - minute);
    assert_eq!(b.get("/").await.status, 200, "still valid a minute before the end");
    app.state.session_clock.advance(2 * minute);
    let after = b.get("/").await;
    assert!(after.redirects_to_login(), "{after:?}");
    let login = b.get(after.location.as_deref().unwrap_or("/login")).await;
    assert!(login.body.contains("Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại."), "{}", login.body);
    // Signing in again starts a fresh session on the same clock.
    assert_eq!(b.login("sale@ipos.vn", crate::support::PASSWORD).await.status, 303);
    assert_eq!(b.get("/").await.status, 200);
}

mod login_throttling_behind_a_proxy {
    use super::*;

    /// 31 wrong passwords (for different accounts, so only the address limit can bite)
    /// from the client that `forwarded_for` names; then one more from each of `then`.
    async fn after_a_guessing_run(trusted: &str, forwarded_for: &str, then: &[&str]) -> Vec<u16> {
        let app = crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| {
            c.trusted_proxies = trusted.split(',').filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
        })
        .await
        .unwrap_or_else(|| panic!("sqlite"));
        app.create_user("admin@ipos.vn", &[Role::Admin]);
        let guesser = crate::support::Browser::with_headers(&app.base, &[("x-forwarded-for", forwarded_for)]);
        for i in 0..hubgate::accounts::service::ADDRESS_FAILURE_LIMIT {
            let page = guesser.login(&format!("khach{i}@ipos.vn"), "sai-mat-khau-1234").await;
            assert_ne!(page.status, 429, "attempt {i} already throttled");
        }
        let mut out = Vec::new();
        for xff in then {
            let b = crate::support::Browser::with_headers(&app.base, &[("x-forwarded-for", xff)]);
            out.push(b.login("nguoi-khac@ipos.vn", "sai-mat-khau-1234").await.status);
        }
        out
    }

    #[actix_web::test]
    async fn a_trusted_proxy_s_clients_each_have_their_own_bucket() {
        // Behind nginx on 127.0.0.1: the guesser is throttled, a colleague is not, and
        // an address the guesser writes in front of the proxy's does not free it.
        let statuses = after_a_guessing_run(
            "127.0.0.1/32",
            "198.51.100.7",
            &["198.51.100.7", "198.51.100.8", "203.0.113.9, 198.51.100.7"],
        )
        .await;
        assert_eq!(statuses[0], 429, "the guesser waits");
        assert_ne!(statuses[1], 429, "a colleague behind the same proxy is not throttled");
        assert_eq!(statuses[2], 429, "a forged hop on the left changes nothing");
    }

    #[actix_web::test]
    async fn without_trusted_proxies_the_header_is_ignored() {
        // Otherwise a guesser would make up a new address for every attempt.
        let statuses = after_a_guessing_run("", "198.51.100.7", &["198.51.100.8"]).await;
        assert_eq!(statuses, vec![429]);
    }
}

db_test!(old_login_failures_are_pruned_on_schedule, |app| {
    // Failures from addresses that never succeed were only pruned by someone else's
    // successful login; the hourly schedule removes them whatever happens.
    use hubgate::db::schema::login_failures;
    let now = hubgate::db::now();
    app.with_conn(|c| {
        for (key, at) in [
            ("address:198.51.100.7", now - chrono::Duration::days(2)),
            ("account:cu@ipos.vn", now - chrono::Duration::hours(25)),
            ("address:198.51.100.8", now - chrono::Duration::minutes(1)),
        ] {
            diesel::insert_into(login_failures::table)
                .values((login_failures::throttle_key.eq(key), login_failures::at.eq(at)))
                .execute(c)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    let schedules: Vec<_> = hubgate::app::registry(&app.state.config)
        .schedules()
        .into_iter()
        .filter(|s| s.name == "prune-login-failures")
        .collect();
    assert_eq!(schedules.len(), 1);
    let added = app.with_conn(|c| hubgate::worker::schedule::tick(c, &schedules, now).unwrap_or(0));
    assert_eq!(added, 1);
    crate::notify::work_until(&app, || {
        app.with_conn(|c| hubgate::worker::models::pending(c).map(|n| n == 0).unwrap_or(false))
    })
    .await;
    let left: Vec<String> =
        app.with_conn(|c| login_failures::table.select(login_failures::throttle_key).load(c).unwrap_or_default());
    assert_eq!(left, vec!["address:198.51.100.8".to_string()]);
});

/// The session cookie as the browser holds it: the app's signed cookie, read and
/// rewritten with the app's own key (the clock of a session is its `iat` field).
mod session_cookie {
    use actix_web::cookie::{Cookie, CookieJar, Key};

    pub const NAME: &str = "hubgate_session";

    /// The session's fields (each a JSON text), from a response's `Set-Cookie`.
    pub fn read(
        app: &crate::support::TestApp,
        headers: &reqwest::header::HeaderMap,
    ) -> serde_json::Map<String, serde_json::Value> {
        let set = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(NAME))
            .unwrap_or_else(|| panic!("no session cookie: {headers:?}"));
        let cookie = Cookie::parse_encoded(set.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let mut jar = CookieJar::new();
        jar.add_original(cookie);
        let key = Key::from(&app.state.config.secret.cookie_key());
        let verified = jar.signed(&key).get(NAME).unwrap_or_else(|| panic!("the app's own cookie verifies"));
        serde_json::from_str(verified.value()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A `Cookie` request header carrying these fields, signed with `key`.
    pub fn header(key: &Key, state: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(key).add(Cookie::new(NAME, serde_json::Value::Object(state.clone()).to_string()));
        let cookie = jar.get(NAME).unwrap_or_else(|| panic!("signed"));
        cookie.encoded().stripped().to_string()
    }

    /// Signs in as a browser would (the login page's token, then the form) with a client
    /// that keeps no cookies; the signed-in session's fields.
    pub async fn sign_in(
        app: &crate::support::TestApp,
        client: &reqwest::Client,
        email: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let key = Key::from(&app.state.config.secret.cookie_key());
        let page = client.get(format!("{}/login", app.base)).send().await.unwrap_or_else(|e| panic!("{e}"));
        let anonymous = read(app, page.headers());
        let csrf: String = anonymous
            .get("csrf")
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let r = client
            .post(format!("{}/login", app.base))
            .header("cookie", header(&key, &anonymous))
            .form(&[("_csrf", csrf.as_str()), ("email", email), ("password", crate::support::PASSWORD)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 303);
        read(app, r.headers())
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_else(|e| panic!("{e}"))
    }
}

db_test!(a_copied_session_stays_ended_after_the_account_is_unlocked, |app| {
    use actix_web::cookie::Key;
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let key = Key::from(&app.state.config.secret.cookie_key());
    let client = session_cookie::client();
    // A copy of the signed-in cookie, as a stolen one would be.
    let copy = session_cookie::header(&key, &session_cookie::sign_in(&app, &client, "sale@ipos.vn").await);
    let status = || async {
        let r = client.get(format!("{}/", app.base)).header("cookie", copy.clone()).send().await;
        r.map(|r| r.status().as_u16()).unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(status().await, 200, "the copy works while the account is in use");
    let admin = app.login("admin@ipos.vn").await;
    let path = format!("/admin/users/{}", sale.id);
    assert_eq!(admin.post(&format!("{path}/disable"), &[]).await.status, 303);
    assert_eq!(admin.post(&format!("{path}/enable"), &[]).await.status, 303);
    assert_eq!(status().await, 303, "locking ended every session; unlocking brings none back");
    assert_eq!(admin.post(&format!("{path}/password"), &[("password", "mat-khau-moi-2026")]).await.status, 303);
    assert_eq!(status().await, 303, "nor does a later password reset");
});

db_test!(an_expired_session_says_so_on_the_login_page, |app| {
    use actix_web::cookie::Key;
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let key = Key::from(&app.state.config.secret.cookie_key());
    let client = session_cookie::client();
    let get = |path: &str, cookie: String| {
        let req = client.get(format!("{}{path}", app.base)).header("cookie", cookie);
        async move {
            let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            (status, headers, r.text().await.unwrap_or_default())
        }
    };
    let signed_in = session_cookie::sign_in(&app, &client, "sale@ipos.vn").await;
    let fresh = session_cookie::header(&key, &signed_in);
    assert_eq!(get("/", fresh.clone()).await.0, 200, "the session works");

    // The same session, signed in longer ago than the lifetime allows.
    let mut old = signed_in.clone();
    let ttl = app.state.config.session_ttl.as_secs() as i64;
    let issued = chrono::Utc::now().timestamp() - ttl - 60;
    old.insert("iat".into(), serde_json::Value::String(issued.to_string()));
    let (status, headers, _) = get("/requests", session_cookie::header(&key, &old)).await;
    assert_eq!(status, 303);
    assert!(headers.get("location").and_then(|v| v.to_str().ok()).is_some_and(|l| l.starts_with("/login?next=")));
    let after = session_cookie::read(&app, &headers);
    assert!(!after.contains_key("uid"), "the session ended: {after:?}");
    let (status, _, login) = get("/login", session_cookie::header(&key, &after)).await;
    assert_eq!(status, 200);
    assert!(
        login.contains(
            "<div class=\"flash flash-info\" role=\"status\">Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.</div>"
        ),
        "{login}"
    );

    // Not for a session that is merely absent, nor for a cookie someone else signed.
    let (_, _, plain) = get("/login", String::new()).await;
    assert!(!plain.contains("hết hạn"));
    let forged = session_cookie::header(&Key::generate(), &old);
    let (status, headers, _) = get("/requests", forged).await;
    assert_eq!(status, 303);
    let (_, _, login) = get("/login", session_cookie::header(&key, &session_cookie::read(&app, &headers))).await;
    assert!(!login.contains("hết hạn"), "a forged cookie is no session at all");
    // The fresh one still works: expiry is per session, not global.
    assert_eq!(get("/", fresh).await.0, 200);
});

// The signed-in user is not reloaded from the database on every request (see
// `hubgate::web::session::UserCache`), yet each change an admin makes holds from the
// changed user's very next request on this node. Every step first has the user's
// session answered, so that what is read next would come from the cache.
db_test!(user_changes_hold_from_the_next_request, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await;
    let user = app.login("sale@ipos.vn").await;
    let path = format!("/admin/users/{}", sale.id);

    // New roles: granted, then taken away.
    assert_eq!(user.get("/admin/users").await.status, 403);
    let grant = admin.post(&path, &[("name", "Bán hàng"), ("role_sale", "on"), ("role_admin", "on")]).await;
    assert_eq!(grant.status, 303, "{}", grant.body);
    assert_eq!(user.get("/admin/users").await.status, 200, "the admin role is there at once");
    let revoke = admin.post(&path, &[("name", "Bán hàng"), ("role_sale", "on")]).await;
    assert_eq!(revoke.status, 303, "{}", revoke.body);
    assert_eq!(user.get("/admin/users").await.status, 403, "and gone at once");

    // Signed out everywhere (an admin sets a new password): the next request is refused.
    assert_eq!(user.get("/").await.status, 200);
    let reset = admin.post(&format!("{path}/password"), &[("password", "mat-khau-moi-2026")]).await;
    assert_eq!(reset.status, 303, "{}", reset.body);
    assert!(user.get("/").await.redirects_to_login());

    // Disabled: the next request is refused.
    let again = app.browser();
    assert_eq!(again.login("sale@ipos.vn", "mat-khau-moi-2026").await.status, 303);
    assert_eq!(again.get("/").await.status, 200);
    let disable = admin.post(&format!("{path}/disable"), &[]).await;
    assert_eq!(disable.status, 303, "{}", disable.body);
    assert!(again.get("/").await.redirects_to_login());
});

// Another node over the same database learns of a change only when its cached copy
// of the user runs out: at most `USER_CACHE_TTL` later. Its clock is moved by that
// lifetime rather than waited for.
db_test!(another_node_sees_a_user_change_within_the_cache_lifetime, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await;
    let (other, other_state) = app.serve_node(|_| {});
    let user = crate::support::Browser::new(&other);
    assert_eq!(user.login("sale@ipos.vn", PASSWORD).await.status, 303);
    assert_eq!(user.get("/").await.status, 200);

    let disable = admin.post(&format!("/admin/users/{}/disable", sale.id), &[]).await;
    assert_eq!(disable.status, 303, "{}", disable.body);
    other_state.session_clock.advance(hubgate::web::session::USER_CACHE_TTL);
    assert!(user.get("/").await.redirects_to_login(), "refused once the other node's copy ran out");
});

// A page that changes nothing in the session does not send the cookie again (signing
// it costs every request); the page that shows a flash does, without the flash.
db_test!(an_unchanged_session_is_not_sent_again, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let b = app.login("sale@ipos.vn").await;
    b.get("/").await;
    assert_eq!(b.header("/", "set-cookie").await, None, "nothing changed");
    let new = "mat-khau-moi-2026";
    let changed = b.post("/account/password", &[("current", PASSWORD), ("password", new), ("confirm", new)]).await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    let (status, headers, body) = b.fetch("/").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Đã đổi mật khẩu."));
    assert!(headers.get("set-cookie").is_some(), "the flash is taken out of the session");
    assert_eq!(b.header("/", "set-cookie").await, None, "and then nothing changes");
    assert!(!b.get("/").await.body.contains("Đã đổi mật khẩu."));
});

// What an admin types for a new account is checked before anything is stored: each
// refused form says why and creates nothing, and the values at the limits go through.
db_test!(new_accounts_refuse_bad_email_password_and_name, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("admin@ipos.vn").await;
    let long_local = "a".repeat(254 - "@ipos.vn".len());
    let too_long = format!("{long_local}b@ipos.vn");
    let bad_emails = [
        "khong-co-a-cong.vn",
        "@ipos.vn",
        "chu@ipos",
        "chu@.ipos.vn",
        "chu@ipos.vn.",
        "chu tich@ipos.vn",
        too_long.as_str(),
    ];
    for email in bad_emails {
        let r = b
            .post("/admin/users", &[("email", email), ("name", "Chủ"), ("password", PASSWORD), ("role_sale", "on")])
            .await;
        assert_eq!(r.status, 422, "{email} was accepted");
        assert!(r.body.contains("Email không hợp lệ."), "{email}: {}", r.body);
    }
    let nine = "123456789";
    let weak = b
        .post("/admin/users", &[("email", "yeu@ipos.vn"), ("name", "Yếu"), ("password", nine), ("role_sale", "on")])
        .await;
    assert_eq!(weak.status, 422, "a nine-character password was accepted");
    assert!(weak.body.contains("Mật khẩu phải có ít nhất 10 ký tự."), "{}", weak.body);
    let long_name = "Nguyễn".repeat(20) + "x";
    for name in ["   ", long_name.as_str()] {
        let r = b
            .post(
                "/admin/users",
                &[("email", "ten@ipos.vn"), ("name", name), ("password", PASSWORD), ("role_sale", "on")],
            )
            .await;
        assert_eq!(r.status, 422, "name {name:?} was accepted");
        assert!(r.body.contains("Vui lòng nhập họ tên (tối đa 120 ký tự)."), "{}", r.body);
    }
    let no_role =
        b.post("/admin/users", &[("email", "vaitro@ipos.vn"), ("name", "Vai trò"), ("password", PASSWORD)]).await;
    assert_eq!(no_role.status, 422);
    assert!(no_role.body.contains("Chọn ít nhất một vai trò."), "{}", no_role.body);
    assert_eq!(user_count(&app), 1, "no refused form created an account");

    // At the limits: a 254-character address, a 10-character password (counted in
    // characters, not bytes) and a 120-character name are all fine.
    let longest = format!("{long_local}@ipos.vn");
    let max_name = "Nguyễn".repeat(20);
    let ok = b
        .post(
            "/admin/users",
            &[
                ("email", longest.as_str()),
                ("name", max_name.as_str()),
                ("password", "mật khẩu 1"),
                ("role_sale", "on"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(app.browser().login(longest.as_str(), "mật khẩu 1").await.status, 303);
});

// The first admin is made only while there is no account at all, even when two setup
// forms pass the page's own check at the same moment and both reach the service.
db_test!(the_first_admin_is_set_up_once, |app| {
    let first = app.with_conn(|c| hubgate::accounts::service::setup_first_admin(c, "chu@ipos.vn", "Chủ", PASSWORD));
    let first = first.unwrap_or_else(|e| panic!("first setup refused: {e:?}"));
    assert!(first.roles().has(Role::Admin));
    let second = app.with_conn(|c| hubgate::accounts::service::setup_first_admin(c, "ke-gian@ipos.vn", "X", PASSWORD));
    assert!(matches!(second, Err(hubgate::error::AppError::NotFound)), "{second:?}");
    assert_eq!(user_count(&app), 1);
    assert_eq!(app.browser().login("ke-gian@ipos.vn", PASSWORD).await.status, 401);
});
