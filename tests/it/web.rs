//! Layout, navigation per role, escaping, error pages, health and metrics.

use hubgate::accounts::Role;

db_test!(each_role_sees_only_its_menu, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await.get("/").await;
    assert!(admin.body.contains("href=\"/admin/users\""));
    assert!(admin.body.contains("Nhật ký thao tác"));
    let sale = app.login("sale@ipos.vn").await.get("/").await;
    assert_eq!(sale.status, 200);
    assert!(sale.body.contains("Tổng quan"));
    assert!(!sale.body.contains("href=\"/admin/users\""), "sales must not see the admin menu");
    assert!(sale.body.contains("Kinh doanh"), "the role is shown in Vietnamese");
});

db_test!(user_input_is_escaped, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("admin@ipos.vn").await;
    let r = b
        .post(
            "/admin/users",
            &[
                ("email", "xss@ipos.vn"),
                ("name", "<script>alert(1)</script>"),
                ("password", crate::support::PASSWORD),
                ("role_sale", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let list = b.get("/admin/users").await;
    assert!(!list.body.contains("<script>alert(1)</script>"));
    assert!(list.body.contains("&#60;script&#62;") || list.body.contains("&lt;script&gt;"));
});

db_test!(errors_are_vietnamese_pages, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("admin@ipos.vn").await;
    let missing = b.get("/khong-co-trang-nay").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("Không tìm thấy"));
    let no_user = b.get("/admin/users/424242").await;
    assert_eq!(no_user.status, 404);
    assert!(no_user.body.contains("Về trang chủ"));
    let bad_id = b.get("/admin/users/abc").await;
    assert_eq!(bad_id.status, 404);
    // Routes are grouped by their first segment: a path in a group that no route of
    // it matches, and a word that only begins like one, get the same page.
    for path in ["/admin/khong-co", "/requests/", "/admin", "/administrator", "/mail/sent/x/y"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.body.contains("Không tìm thấy"), "{path}");
    }
    assert_eq!(b.get("/mail/sent").await.status, 200, "not taken for a message id");
});

db_test!(health_and_metrics, |app| {
    let b = app.browser();
    let health = b.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert!(health.body.contains("\"database\":\"ok\""));
    let _ = b.get("/login").await;
    // No token configured: /metrics does not exist.
    assert_eq!(b.get("/metrics").await.status, 404);
});

#[actix_web::test]
async fn pages_carry_the_security_headers() {
    let app = crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
    let resp = reqwest::get(format!("{}/login", app.base)).await.unwrap_or_else(|e| panic!("{e}"));
    let h = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let csp = h("content-security-policy");
    assert!(csp.contains("script-src 'self'") && csp.contains("img-src 'self' data:"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert_eq!(h("x-frame-options"), "DENY");
}

#[actix_web::test]
async fn metrics_need_the_bearer_token() {
    let Some(app) =
        crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| c.metrics_token = "scrape-secret".into())
            .await
    else {
        return;
    };
    let _ = app.browser().get("/login").await;
    let client = reqwest::Client::new();
    let get = |auth: Option<&'static str>| {
        let mut r = client.get(format!("{}/metrics", app.base));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    for auth in [None, Some("Bearer wrong"), Some("scrape-secret"), Some("Basic c2NyYXBlLXNlY3JldA==")] {
        let resp = get(auth).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
    }
    let resp = get(Some("Bearer scrape-secret")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.unwrap_or_default();
    assert!(body.contains("hubgate_http_requests_total") && body.contains("hubgate_db_pool_max"), "{body}");
}

#[actix_web::test]
async fn static_files_are_cached() {
    let app = crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
    let resp = reqwest::get(format!("{}/static/app.css", app.base)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let cache = resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(cache.contains("max-age"), "{cache}");
    assert!(resp.headers().contains_key("etag"));
}

db_test!(crafted_list_parameters_are_clamped_not_errors, |app| {
    // `?page=` and `?older_days=` are typed into the address bar as often as clicked:
    // a huge page overflowed the row offset, a huge age panicked in the date arithmetic.
    app.create_user("lead@ipos.vn", &[Role::Admin, Role::Leader]);
    let b = app.login("lead@ipos.vn").await;
    let huge = i64::MAX.to_string();
    for path in [
        format!("/requests?page={huge}"),
        format!("/requests?older_days={huge}"),
        format!("/requests?older_days=-{huge}"),
        format!("/mail?page={huge}"),
        format!("/mail/sent?page={huge}"),
        format!("/admin/audit?page={huge}"),
        format!("/merchants?q=a&page={huge}"),
        format!("/pyc?page={huge}"),
        format!("/pyc?state=draft&page={huge}"),
        format!("/reports?page={huge}"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
});

/// The installed binary alone, in an empty folder, serves the styled app: the stylesheet
/// and script are inside it, not read from the source tree. Where the test may mount
/// over the source tree's `static/` (root with `unshare`, as in CI), it hides that folder
/// from the server; elsewhere it says so and checks the rest.
#[actix_web::test]
async fn a_copied_binary_serves_its_static_files_from_any_folder() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = dir.path().join("hubgate");
    std::fs::copy(env!("CARGO_BIN_EXE_hubgate"), &bin).unwrap_or_else(|e| panic!("{e}"));
    let (listener, port) = crate::support::listener().unwrap_or_else(|e| panic!("bind: {e}"));
    let source_static = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
    let hide = Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("mount -t tmpfs none {source_static} && ls -A {source_static}")])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.is_empty());
    let mut cmd = if hide {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", &format!("mount -t tmpfs none {source_static} && exec ./hubgate serve")]);
        c
    } else {
        eprintln!("note: cannot hide {source_static} here (needs unshare as root); served with it present");
        let mut c = Command::new(&bin);
        c.arg("serve");
        c
    };
    cmd.current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUBGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Through unshare and sh too: fd 3 and LISTEN_FDS reach the program's exec.
    crate::support::hand_over(&mut cmd, listener).unwrap_or_else(|e| panic!("{e}"));
    let mut child = crate::support::KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("{e}")));
    drop(cmd);
    let base = format!("http://127.0.0.1:{port}");
    // A timeout per request: a handed-over socket nobody accepts on would never answer.
    let client =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let login = loop {
        if let Ok(r) = client.get(format!("{base}/login")).send().await {
            break r.text().await.unwrap_or_default();
        }
        assert!(std::time::Instant::now() < deadline, "server did not start: {:?}", child.0.try_wait());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let css_url = login
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/static/app.css"))
        .unwrap_or_else(|| panic!("no stylesheet link: {login}"))
        .replace("&amp;", "&");
    let css = client.get(format!("{base}{css_url}")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap_or("").starts_with("text/css"));
    let etag = css.headers()["etag"].clone();
    let body = css.bytes().await.unwrap_or_default();
    assert_eq!(body.as_ref(), include_bytes!("../../static/app.css"));
    let again = client
        .get(format!("{base}{css_url}"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.status(), 304);
    let js = client.get(format!("{base}/static/app.js")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(js.status(), 200);
    assert_eq!(
        client.get(format!("{base}/static/khong-co.css")).send().await.map(|r| r.status().as_u16()).ok(),
        Some(404)
    );
    // Its database and data were made in the empty folder it was started in.
    assert!(dir.path().join("data").exists(), "{:?}", std::fs::read_dir(dir.path()).map(|d| d.count()));
}

/// Socket activation (issue 18): `hubgate serve` handed a listening socket as fd 3 with
/// `LISTEN_FDS=1`, as systemd does, serves on it and binds nothing itself. Its
/// `HUBGATE_BIND` names a port held here, so a bind of it would fail and end the
/// program.
#[actix_web::test]
async fn serve_takes_a_handed_over_socket_and_binds_nothing() -> Result<(), Box<dyn std::error::Error>> {
    use std::process::Command;
    let dir = tempfile::tempdir()?;
    let (listener, port) = crate::support::listener()?;
    let (_held, held_port) = crate::support::listener()?;
    let log_path = dir.path().join("hubgate.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubgate"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .env("DATABASE_URL", format!("sqlite://{}/hubgate.db", dir.path().display()))
        .env("HUBGATE_DATA_DIR", dir.path())
        .env("HUBGATE_BIND", format!("127.0.0.1:{held_port}"))
        .env("HUBGATE_LOG", "info");
    // The log (on stdout) and errors (on stderr), in one file.
    let log_file = std::fs::File::create(&log_path)?;
    cmd.stdout(log_file.try_clone()?).stderr(log_file);
    crate::support::hand_over(&mut cmd, listener)?;
    let mut child = crate::support::KillOnDrop(cmd.spawn()?);
    drop(cmd);
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.0.try_wait()? {
            return Err(format!("hubgate serve exited ({status}):\n{}", std::fs::read_to_string(&log_path)?).into());
        }
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            return Err(format!("no answer on the handed-over port:\n{}", std::fs::read_to_string(&log_path)?).into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(&log_path)?;
    let listening = log.lines().find(|l| l.contains("hubgate is listening")).unwrap_or_default();
    assert!(listening.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(!listening.contains(&format!("127.0.0.1:{held_port}")), "{log}");
    assert!(child.0.try_wait()?.is_none(), "still running: {log}");
    Ok(())
}

/// A handed-over fd 3 that is no listening TCP socket (a unit that hands over the
/// wrong thing) stops the start with a message naming it, rather than serving on
/// `HUBGATE_BIND` (free here: port 0) as if nothing had been handed over.
#[actix_web::test]
async fn serve_refuses_a_handed_over_fd_that_is_no_socket() -> Result<(), Box<dyn std::error::Error>> {
    use command_fds::{CommandFdExt, FdMapping};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir()?;
    let not_a_socket = std::fs::File::create(dir.path().join("not-a-socket"))?;
    let log_path = dir.path().join("hubgate.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubgate"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .env("DATABASE_URL", format!("sqlite://{}/hubgate.db", dir.path().display()))
        .env("HUBGATE_DATA_DIR", dir.path())
        .env("HUBGATE_BIND", "127.0.0.1:0")
        .env("HUBGATE_LOG", "warn")
        .env("LISTEN_FDS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?);
    cmd.fd_mappings(vec![FdMapping { parent_fd: not_a_socket.into(), child_fd: 3 }])?;
    let mut child = crate::support::KillOnDrop(cmd.spawn()?);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            return Err(format!("still running:\n{}", std::fs::read_to_string(&log_path)?).into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&log_path)?;
    assert!(!status.success(), "{log}");
    assert!(log.contains("handed-over socket 3") && log.contains("not a socket"), "{log}");
    Ok(())
}

/// The `hubgate_session` cookie a response sets, as its raw `Set-Cookie` value.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hubgate_session="))
        .unwrap_or_else(|| panic!("no session cookie in {headers:?}"))
        .to_string()
}

db_test!(every_kind_of_page_carries_the_security_headers_and_a_guarded_cookie, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let anonymous = |path: &'static str| {
        let (client, base) = (stranger.clone(), app.base.clone());
        async move {
            let r = client.get(format!("{base}{path}")).send().await.unwrap_or_else(|e| panic!("{e}"));
            (r.status().as_u16(), r.headers().clone())
        }
    };
    let mut seen =
        vec![("/login", anonymous("/login").await), ("/requests (signed out)", anonymous("/requests").await)];
    for path in ["/requests", "/khong-co-trang-nay", "/admin/users"] {
        let (status, headers, _) = sale.fetch(path).await;
        seen.push((path, (status, headers)));
    }
    let statuses: Vec<u16> = seen.iter().map(|s| s.1.0).collect();
    assert_eq!(statuses, [200, 303, 200, 404, 403], "a page, a redirect, a list, not found, refused");
    for (path, (_, h)) in &seen {
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(get("content-security-policy"), hubgate::web::CONTENT_SECURITY_POLICY, "{path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert_eq!(get("referrer-policy"), "same-origin", "{path}");
    }

    // The session cookie: not for scripts, not sent by other sites' forms, whole site.
    let (_, login_headers) = &seen[0].1;
    let cookie = session_cookie(login_headers);
    let flags: Vec<String> = cookie.split(';').skip(1).map(|f| f.trim().to_ascii_lowercase()).collect();
    assert!(flags.contains(&"httponly".to_string()), "{cookie}");
    assert!(flags.contains(&"samesite=lax".to_string()), "{cookie}");
    assert!(flags.contains(&"path=/".to_string()), "{cookie}");
    assert!(!flags.contains(&"secure".to_string()), "plain http here: a Secure cookie would never come back: {cookie}");
    let ttl = app.state.config.session_ttl.as_secs();
    assert!(flags.contains(&format!("max-age={ttl}")), "lives as long as a session: {cookie}");

    // Behind https (as deployed), the cookie is Secure as well.
    let https = app.serve_again(|c| c.base_url = "https://hub.ipos.vn".into());
    let r = stranger.get(format!("{https}/login")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let cookie = session_cookie(r.headers());
    let flags: Vec<String> = cookie.split(';').skip(1).map(|f| f.trim().to_ascii_lowercase()).collect();
    assert!(flags.contains(&"secure".to_string()) && flags.contains(&"httponly".to_string()), "{cookie}");
});
