//! "Đăng nhập bằng Google / Microsoft" against a real OpenID provider: the certified
//! `oidc-provider` package (tests/oidc/server.mjs) on 127.0.0.1, one process per test.
//! Covered: first sign-in and the phone step, a returning identity, joining an
//! existing account only with a verified e-mail, never a staff account, a tampered
//! state, a wrong nonce, an expired code.
//!
//! The provider needs `npm ci --prefix tests/oidc` (done by `.ci/run`); without it the
//! tests say so and pass, except under `CI`, where they fail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use hubgate::config::OidcProvider;
use hubgate::db::Backend;
use hubgate::db::schema::{user_identities, users};

use crate::support::{Browser, Page, TestApp};

const SECRET: &str = "oidc-test-secret-2026";

/// A running provider, killed when dropped.
pub struct Provider {
    pub issuer: String,
    child: Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider with clients for `base` (the app's public URL): `google`
    /// with a normal code lifetime and `microsoft` whose codes expire after 1 s.
    pub fn start(base: &str) -> Option<Provider> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        if !dir.join("node_modules/oidc-provider").exists() {
            crate::support::skipped("tests/oidc/node_modules is missing (run `npm ci --prefix tests/oidc`)");
            return None;
        }
        let clients = serde_json::json!([
            { "client_id": "google-client", "client_secret": SECRET, "redirect_uris": [format!("{base}/auth/google/callback")] },
            { "client_id": "microsoft-client", "client_secret": SECRET, "redirect_uris": [format!("{base}/auth/microsoft/callback")], "code_ttl_secs": 1 },
        ]);
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .env("OIDC_CLIENTS", clients.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("node: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line =
            rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("the OpenID provider did not start"));
        let issuer = line.trim().strip_prefix("READY ").unwrap_or_else(|| panic!("provider said {line:?}")).to_string();
        Some(Provider { issuer, child })
    }

    pub fn configs(&self) -> Vec<OidcProvider> {
        vec![
            OidcProvider {
                key: "google",
                label: "Google",
                issuer: self.issuer.clone(),
                client_id: "google-client".into(),
                client_secret: SECRET.into(),
            },
            OidcProvider {
                key: "microsoft",
                label: "Microsoft",
                issuer: self.issuer.clone(),
                client_id: "microsoft-client".into(),
                client_secret: SECRET.into(),
            },
        ]
    }
}

/// Who types what into the provider's login form.
pub struct Person<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub verified: bool,
}

/// Drives one sign-in: our /auth/{provider} → the provider's login form → back to
/// our callback, whose URL is returned (as a path on the app) without visiting it.
/// `edit_auth` may change the authorization URL before the browser goes there.
pub async fn to_callback(
    app_browser: &Browser,
    base: &str,
    provider: &str,
    person: &Person<'_>,
    edit_auth: impl Fn(String) -> String,
) -> String {
    let start = app_browser.get(&format!("/auth/{provider}")).await;
    assert_eq!(start.status, 303, "start: {}", start.body);
    let mut url = edit_auth(start.location.unwrap_or_default());
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
    for _ in 0..12 {
        if let Some(path) = url.strip_prefix(base) {
            return path.to_string();
        }
        let resp = http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        if resp.status().is_redirection() {
            let loc = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            url = if loc.starts_with('/') { format!("{origin}{loc}") } else { loc };
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        assert!(body.contains("id=\"oidc-login\""), "unexpected provider page at {url}: {body}");
        let action = body
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no form action"))
            .to_string();
        let mut fields = vec![("email", person.email), ("name", person.name)];
        if person.verified {
            fields.push(("email_verified", "1"));
        }
        let resp = http
            .post(format!("{origin}{action}"))
            .form(&fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("login form: {e}"));
        let loc = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        url = if loc.starts_with('/') { format!("{origin}{loc}") } else { loc };
    }
    panic!("the provider never sent the browser back (last at {url})");
}

async fn sign_in(app: &TestApp, b: &Browser, provider: &str, person: &Person<'_>) -> Page {
    let base = app.state.config.base_url.clone();
    let callback = to_callback(b, &base, provider, person, |u| u).await;
    b.get(&callback).await
}

fn identities(app: &TestApp, email: &str) -> i64 {
    app.with_conn(|c| user_identities::table.filter(user_identities::email.eq(email)).count().get_result(c))
        .unwrap_or(-1)
}

async fn journey(backend: Backend) {
    // The provider must know the app's redirect URL, which is the configured base URL.
    let base = "http://127.0.0.1:8080";
    let Some(provider) = Provider::start(base) else { return };
    let configs = provider.configs();
    let Some(app) = TestApp::start_with(backend, |c| c.oidc = configs).await else { return };

    // The buttons appear for the configured providers (once setup is done).
    app.create_user("admin@ipos.vn", &[hubgate::accounts::Role::Admin]);
    let login = app.browser().get("/login").await;
    assert!(login.body.contains("Đăng nhập bằng Google") && login.body.contains("Đăng nhập bằng Microsoft"));

    // First sign-in: a new merchant account, then the phone step "to finish".
    let b = app.browser();
    let page =
        sign_in(&app, &b, "google", &Person { email: "Mai@Quan.vn", name: "Trần Thị Mai", verified: true }).await;
    assert_eq!(page.location.as_deref(), Some("/app"), "{}", page.body);
    assert_eq!(b.get("/app").await.location.as_deref(), Some("/app/welcome"));
    assert!(b.get("/app/welcome").await.body.contains("Điền số điện thoại để hoàn tất"));
    let bad = b.post("/app/welcome", &[("phone", "12345")]).await;
    assert_eq!(bad.status, 422);
    let done = b.post("/app/welcome", &[("phone", "0987 654 321")]).await;
    assert_eq!(done.location.as_deref(), Some("/app"));
    assert_eq!(b.get("/app").await.status, 200);
    let (name, kind, phone, verified): (String, String, Option<String>, Option<chrono::NaiveDateTime>) = app
        .with_conn(|c| {
            users::table
                .filter(users::email.eq("mai@quan.vn"))
                .select((users::name, users::kind, users::phone, users::email_verified_at))
                .first(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((name.as_str(), kind.as_str(), phone.as_deref()), ("Trần Thị Mai", "merchant", Some("+84987654321")));
    assert!(verified.is_some(), "a provider-verified e-mail counts as verified");
    // Returning: the same account, straight in.
    let again = app.browser();
    let page = sign_in(&app, &again, "google", &Person { email: "mai@quan.vn", name: "Mai", verified: true }).await;
    assert_eq!(page.location.as_deref(), Some("/app"));
    assert_eq!(again.get("/app").await.status, 200);
    assert_eq!(identities(&app, "mai@quan.vn"), 1);

    // A tampered state is refused and signs nobody in.
    let t = app.browser();
    let callback =
        to_callback(&t, base, "google", &Person { email: "x@quan.vn", name: "X", verified: true }, |u| u).await;
    let tampered = callback.replace("state=", "state=x");
    let page = t.get(&tampered).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Phiên đăng nhập không hợp lệ"), "{}", page.body);
    assert_eq!(t.get("/app").await.location.as_deref(), Some("/login?next=%2Fapp"));
    // …and the pending sign-in is spent: the untouched callback no longer works either.
    assert_eq!(t.get(&callback).await.status, 400);

    // A wrong nonce: the ID token does not answer our request.
    let n = app.browser();
    let callback = to_callback(&n, base, "google", &Person { email: "y@quan.vn", name: "Y", verified: true }, |u| {
        let (head, tail) = u.split_once("nonce=").unwrap_or((&u, ""));
        format!("{head}nonce=forged{tail}")
    })
    .await;
    let page = n.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("thông tin xác thực từ nhà cung cấp không hợp lệ"), "{}", page.body);
    assert_eq!(identities(&app, "y@quan.vn"), 0);

    // An expired code (Microsoft's client here has 1-second codes).
    let e = app.browser();
    let callback =
        to_callback(&e, base, "microsoft", &Person { email: "z@quan.vn", name: "Z", verified: true }, |u| u).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = e.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("mã xác thực không hợp lệ hoặc đã hết hạn"), "{}", page.body);
    assert_eq!(identities(&app, "z@quan.vn"), 0);

    // An existing password account is joined only when the provider verified the e-mail.
    let lan = app.create_merchant("lan@cafe.vn");
    let u = app.browser();
    let page = sign_in(&app, &u, "google", &Person { email: "lan@cafe.vn", name: "Kẻ giả", verified: false }).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("nhà cung cấp chưa xác nhận email"), "{}", page.body);
    assert_eq!(identities(&app, "lan@cafe.vn"), 0);
    let v = app.browser();
    let page = sign_in(&app, &v, "microsoft", &Person { email: "lan@cafe.vn", name: "Lan", verified: true }).await;
    assert_eq!(page.location.as_deref(), Some("/app"));
    let joined: i64 = app
        .with_conn(|c| {
            user_identities::table
                .filter(user_identities::email.eq("lan@cafe.vn"))
                .select(user_identities::user_id)
                .first(c)
        })
        .unwrap_or(-1);
    assert_eq!(joined, lan.id);

    // Never a staff account.
    app.create_user("sale@ipos.vn", &[hubgate::accounts::Role::Sale]);
    let s = app.browser();
    let page = sign_in(&app, &s, "google", &Person { email: "sale@ipos.vn", name: "Sale", verified: true }).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("tài khoản nhân viên"));
    assert_eq!(s.get("/requests").await.location.as_deref(), Some("/login?next=%2Frequests"));
}

#[actix_web::test]
async fn openid_sign_in_sqlite() {
    journey(Backend::Sqlite).await;
}

#[actix_web::test]
async fn openid_sign_in_postgres() {
    journey(Backend::Postgres).await;
}

#[actix_web::test]
async fn no_button_without_a_configured_provider() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.create_user("admin@ipos.vn", &[hubgate::accounts::Role::Admin]);
    let login = app.browser().get("/login").await;
    assert!(!login.body.contains("Đăng nhập bằng"), "{}", login.body);
    assert_eq!(app.browser().get("/auth/google").await.status, 404);
}
