//! hubgate as an OAuth 2 authorization server: a developer registers an app, a business
//! owner consents on the Vietnamese screen, the app trades the code (with PKCE) for
//! tokens, uses the API within its scopes, refreshes (rotation, reuse detection),
//! revokes; the owner revokes it from the business's API page. Forged consent posts and
//! redirect URIs are refused. Both databases.

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{Browser, Page, TestApp};

const REDIRECT: &str = "https://app.example.vn/callback";

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(location)
        .unwrap_or_else(|e| panic!("{location}: {e}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn authorize_path(client_id: &str, scope: &str, verifier: &str, state: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope={}&state={state}&code_challenge={}&code_challenge_method=S256",
        urlencoding::encode(REDIRECT),
        urlencoding::encode(scope),
        challenge(verifier)
    )
}

/// The consent screen's hidden fields, as the page rendered them.
fn consent_fields(page: &Page) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["client_id", "redirect_uri", "scope", "state", "code_challenge"] {
        let marker = format!("name=\"{name}\" value=\"");
        let v = page.body.split(&marker).nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
        out.push((name.to_string(), v.replace("&#x2f;", "/").replace("&#47;", "/").replace("&amp;", "&")));
    }
    out
}

async fn consent(owner: &Browser, path: &str, bid: i64, decision: &str) -> Page {
    let page = owner.get(path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut fields = consent_fields(&page);
    fields.push(("business_id".into(), bid.to_string()));
    fields.push(("decision".into(), decision.into()));
    let refs: Vec<(&str, &str)> = fields.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    owner.post("/oauth/authorize", &refs).await
}

async fn token(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/oauth/token", app.base)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn api(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", app.base))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Registers an app on the developer page; (client id, secret when confidential).
async fn register(dev: &Browser, name: &str, confidential: bool) -> (String, Option<String>) {
    let mut fields = vec![("name", name), ("website", "https://app.example.vn"), ("redirect_uris", REDIRECT)];
    if confidential {
        fields.push(("confidential", "1"));
    }
    let page = dev.post("/app/developer/apps", &fields).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let grab = |id: &str| {
        page.body.split(&format!("id=\"{id}\">")).nth(1).and_then(|s| s.split('<').next()).map(str::to_string)
    };
    let client_id = grab("client-id").unwrap_or_else(|| panic!("no client id: {}", page.body));
    (client_id, grab("client-secret"))
}

crate::db_test!(an_app_is_authorised_used_refreshed_and_revoked, |app| {
    let developer = app.create_merchant("dev@phanmem.vn");
    let _ = developer;
    let dev = app.login("dev@phanmem.vn").await;
    let (client_id, secret) = register(&dev, "Kế toán ABC", false).await;
    assert!(client_id.starts_with("hgapp_") && secret.is_none(), "a public client has no secret");
    let listed = dev.get("/app/developer").await;
    assert!(listed.body.contains(&client_id) && listed.body.contains("công khai (chỉ PKCE)"));
    // A redirect URI that is not https (nor loopback) is refused with the reason.
    let bad = dev.post("/app/developer/apps", &[("name", "X"), ("redirect_uris", "http://evil.example/cb")]).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("chỉ https"), "{}", bad.body);

    let owner_user = app.create_merchant("chu@quanpho.vn");
    let bid = app.create_business(&owner_user, "Quán Phở Hà");
    let other_owner = app.create_merchant("chu@khac.vn");
    let other_bid = app.create_business(&other_owner, "Quán Khác");

    // Not signed in: the login page, which returns to the same request.
    let verifier = "v".repeat(20) + "erifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let path = authorize_path(&client_id, "read", &verifier, "xyz-1");
    let anon = app.browser().get(&path).await;
    assert_eq!(anon.status, 303);
    let login_to = anon.location.clone().unwrap_or_default();
    assert!(login_to.starts_with("/login?next=%2Foauth%2Fauthorize"), "{login_to}");

    let owner = app.login("chu@quanpho.vn").await;
    // The consent screen names the app, its developer, the business and the scopes.
    let page = owner.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "Cấp quyền cho <strong>Kế toán ABC</strong>",
        "dev@phanmem.vn",
        "Quán Phở Hà",
        "Xem tài khoản ngân hàng, số dư và giao dịch",
    ] {
        assert!(page.body.contains(shown), "consent lacks {shown}");
    }
    assert!(!page.body.contains("Quán Khác"), "only the user's own businesses");
    assert!(!page.body.contains("Tạo, sửa và xóa webhook"), "only the scopes asked");

    // What cannot be answered by redirecting: an unregistered redirect URI, an unknown app.
    let forged =
        owner.get(&path.replace(&urlencoding::encode(REDIRECT).to_string(), "https%3A%2F%2Fevil.example%2Fcb")).await;
    assert_eq!((forged.status, forged.location.is_none()), (400, true), "never sent to an unregistered URI");
    assert_eq!(owner.get(&path.replace(&client_id, "hgapp_nope")).await.status, 400);
    // No PKCE: back to the app with the error.
    let no_pkce = owner.get(&path.replace("&code_challenge_method=S256", "")).await;
    let q = query_of(no_pkce.location.as_deref().unwrap_or(""));
    assert_eq!(
        (q.get("error").map(String::as_str), q.get("state").map(String::as_str)),
        (Some("invalid_request"), Some("xyz-1"))
    );
    // An unknown scope.
    let q = query_of(owner.get(&path.replace("scope=read", "scope=admin")).await.location.as_deref().unwrap_or(""));
    assert_eq!(q.get("error").map(String::as_str), Some("invalid_scope"));

    // A forged post: someone else's business. Nothing is issued.
    let forged_post = consent(&owner, &path, other_bid, "allow").await;
    assert_eq!(forged_post.status, 422, "{}", forged_post.body);
    // Deny: back with access_denied.
    let denied = consent(&owner, &path, bid, "deny").await;
    let q = query_of(denied.location.as_deref().unwrap_or(""));
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));

    // Allow: back with a code and the state.
    let allowed = consent(&owner, &path, bid, "allow").await;
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    let location = allowed.location.clone().unwrap_or_default();
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(&location);
    assert_eq!(q.get("state").map(String::as_str), Some("xyz-1"));
    let code = q.get("code").cloned().unwrap_or_default();

    // The code needs the verifier and the app's own client id.
    let wrong = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"x".repeat(50)),
        ],
        None,
    )
    .await;
    assert_eq!((wrong.0, wrong.1["error"].as_str()), (400, Some("invalid_grant")), "{}", wrong.1);
    let (s, set) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(
        (set["token_type"].as_str(), set["expires_in"].as_i64(), set["scope"].as_str()),
        (Some("Bearer"), Some(3600), Some("read"))
    );
    let access = set["access_token"].as_str().unwrap_or_default().to_string();
    let refresh = set["refresh_token"].as_str().unwrap_or_default().to_string();

    // The token reaches this business, within its scope.
    let (s, v) = api(&app, &access, "GET", "/v2/userInfo", None).await;
    assert_eq!((s, v["data"]["business"]["id"].as_i64()), (200, Some(bid)), "{v}");
    let (s, v) =
        api(&app, &access, "POST", "/v2/webhooks", Some(serde_json::json!({"webhook": "https://hook.example.vn/x"})))
            .await;
    assert_eq!((s, v["error"].as_i64()), (403, Some(403)), "read only: {v}");
    assert!(v["message"].as_str().unwrap_or("").contains("webhooks"), "{v}");

    // The business sees the app on its API page.
    let api_page = owner.get(&format!("/app/b/{bid}/api")).await;
    assert!(api_page.body.contains("Kế toán ABC") && api_page.body.contains("chu@quanpho.vn"), "{}", api_page.body);

    // Refresh rotates; the spent refresh token, presented again, revokes the grant.
    let (s, set2) =
        token(&app, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)], None)
            .await;
    assert_eq!(s, 200, "{set2}");
    let access2 = set2["access_token"].as_str().unwrap_or_default().to_string();
    assert_ne!(set2["refresh_token"], set["refresh_token"]);
    assert_eq!(api(&app, &access2, "GET", "/v2/accounts", None).await.0, 200);
    let widen = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", set2["refresh_token"].as_str().unwrap_or("")),
            ("client_id", &client_id),
            ("scope", "read webhooks"),
        ],
        None,
    )
    .await;
    assert_eq!(widen.1["error"].as_str(), Some("invalid_scope"), "a refresh never widens");
    let reuse =
        token(&app, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)], None)
            .await;
    assert_eq!(reuse.1["error"].as_str(), Some("invalid_grant"));
    let (s, v) = api(&app, &access2, "GET", "/v2/accounts", None).await;
    assert_eq!((s, v["error"].as_i64()), (401, Some(401)), "a replayed refresh token ends the grant: {v}");

    // The code is single use: a second exchange fails.
    let again = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(again.1["error"].as_str(), Some("invalid_grant"));

    // A confidential app: its secret is required, by Basic or in the body.
    let (conf_id, conf_secret) = register(&dev, "Máy chủ XYZ", true).await;
    let conf_secret = conf_secret.unwrap_or_else(|| panic!("a confidential app gets its secret once"));
    assert!(!dev.get("/app/developer").await.body.contains(&conf_secret), "shown once");
    let verifier2 = "w".repeat(64);
    let path2 = authorize_path(&conf_id, "read webhooks", &verifier2, "s2");
    let allowed = consent(&owner, &path2, bid, "allow").await;
    let code2 = query_of(allowed.location.as_deref().unwrap_or("")).get("code").cloned().unwrap_or_default();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code2.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier2.as_str()),
    ];
    let (s, v) = token(&app, &[&form[..], &[("client_id", conf_id.as_str())]].concat(), None).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "no secret: {v}");
    let (s, set3) = token(&app, &form, Some((&conf_id, &conf_secret))).await;
    assert_eq!(s, 200, "{set3}");
    let access3 = set3["access_token"].as_str().unwrap_or_default().to_string();
    let (s, v) =
        api(&app, &access3, "POST", "/v2/webhooks", Some(serde_json::json!({"webhook": "https://hook.example.vn/x"})))
            .await;
    // Past the scope check (the made-up host then fails the destination check).
    assert!(s == 200 || (s == 422 && v["message"].as_str().is_some_and(|m| m.contains("hook.example.vn"))), "{s} {v}");

    // RFC 7009 revocation of the access token.
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", app.base))
        .basic_auth(&conf_id, Some(&conf_secret))
        .form(&[("token", access3.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(api(&app, &access3, "GET", "/v2/userInfo", None).await.0, 401);

    // The owner revokes the app from the business's page: its refresh token dies too.
    let refresh3 = set3["refresh_token"].as_str().unwrap_or_default().to_string();
    let page = owner.get(&format!("/app/b/{bid}/api")).await;
    let gid = page
        .body
        .split("/api/grants/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no grant listed: {}", page.body))
        .to_string();
    let done = owner.post(&format!("/app/b/{bid}/api/grants/{gid}/revoke"), &[]).await;
    assert_eq!(done.status, 303);
    let after =
        token(&app, &[("grant_type", "refresh_token"), ("refresh_token", &refresh3)], Some((&conf_id, &conf_secret)))
            .await;
    assert_eq!(after.1["error"].as_str(), Some("invalid_grant"), "{}", after.1);
    let page = owner.get(&format!("/app/b/{bid}/api")).await;
    assert!(!page.body.contains("Máy chủ XYZ"), "revoked grants leave the list");

    // Every grant, and its end, is in the audit log.
    let audit: i64 = app.with_conn(|c| {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        hubgate::db::schema::audit_log::table
            .filter(hubgate::db::schema::audit_log::entity_type.eq("oauth_grant"))
            .count()
            .get_result(c)
            .unwrap_or(0)
    });
    assert!(audit >= 3, "grants, their revocations are audited: {audit}");
});
