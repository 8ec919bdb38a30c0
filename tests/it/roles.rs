//! The role matrix: every declared route × every role.
//!
//! `EXPECTED` is the access policy written out by hand. The test fails when a route
//! exists that is not listed here (add it with its rule) and when the running app
//! answers any cell differently: anonymous visitors are sent to the login page,
//! wrong roles get 403, allowed roles get through (to real rows of each kind); and a
//! server error in any cell fails it.

use hubgate::accounts::Role;

/// (method, path, who): "public", "signedin" (staff or merchant), "staff", "merchant"
/// (a merchant account, never staff), or the staff roles allowed (admin always is).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/", "staff"),
    ("GET", "/signup", "public"),
    ("POST", "/signup", "public"),
    ("GET", "/verify-email", "public"),
    ("POST", "/verify-email/resend", "merchant"),
    ("GET", "/password/forgot", "public"),
    ("POST", "/password/forgot", "public"),
    ("GET", "/password/reset", "public"),
    ("POST", "/password/reset", "public"),
    ("GET", "/auth/{provider}", "public"),
    ("GET", "/auth/{provider}/callback", "public"),
    ("GET", "/app/welcome", "merchant"),
    ("POST", "/app/welcome", "merchant"),
    ("GET", "/app/verify", "merchant"),
    ("GET", "/app/account", "merchant"),
    ("POST", "/app/account", "merchant"),
    ("GET", "/app", "merchant"),
    ("GET", "/app/businesses/new", "merchant"),
    ("POST", "/app/businesses", "merchant"),
    ("GET", "/app/b/{bid}", "merchant"),
    ("GET", "/app/b/{bid}/accounts", "merchant"),
    ("POST", "/app/b/{bid}/accounts/{aid}/remove", "merchant"),
    ("GET", "/app/b/{bid}/members", "merchant"),
    ("POST", "/app/b/{bid}/members/invite", "merchant"),
    ("POST", "/app/b/{bid}/members/{mid}/role", "merchant"),
    ("POST", "/app/b/{bid}/members/{mid}/remove", "merchant"),
    ("POST", "/app/b/{bid}/invitations/{iid}/revoke", "merchant"),
    ("GET", "/app/b/{bid}/plan", "merchant"),
    ("POST", "/app/b/{bid}/plan/upgrade", "merchant"),
    ("GET", "/app/b/{bid}/settings", "merchant"),
    ("POST", "/app/b/{bid}/settings", "merchant"),
    ("POST", "/app/b/{bid}/delete", "merchant"),
    ("GET", "/invite", "public"),
    ("POST", "/invite/accept", "merchant"),
    ("GET", "/app/b/{bid}/connect", "merchant"),
    ("GET", "/app/b/{bid}/connect/next", "merchant"),
    ("GET", "/app/b/{bid}/connect/{bin}", "merchant"),
    ("POST", "/app/b/{bid}/connect/{bin}/official", "merchant"),
    ("POST", "/app/b/{bid}/connect/{bin}/rpa", "merchant"),
    ("POST", "/app/b/{bid}/connect/{bin}/push", "merchant"),
    ("POST", "/app/b/{bid}/connect-demo", "merchant"),
    ("GET", "/callback/handler/{bank}", "merchant"),
    ("GET", "/app/b/{bid}/connections/{cid}/accounts", "merchant"),
    ("POST", "/app/b/{bid}/connections/{cid}/accounts", "merchant"),
    ("GET", "/link", "merchant"),
    ("POST", "/app/b/{bid}/accounts/{aid}/sync", "merchant"),
    ("GET", "/app/b/{bid}/accounts/{aid}/statements", "merchant"),
    ("POST", "/app/b/{bid}/accounts/{aid}/statements", "merchant"),
    ("GET", "/app/b/{bid}/statements/{id}", "merchant"),
    ("POST", "/app/b/{bid}/statements/{id}/import", "merchant"),
    ("GET", "/app/b/{bid}/transactions", "merchant"),
    ("GET", "/app/b/{bid}/transactions/export", "merchant"),
    ("GET", "/app/b/{bid}/transactions/{tid}", "merchant"),
    ("POST", "/app/b/{bid}/transactions/{tid}/delete", "merchant"),
    ("GET", "/app/b/{bid}/integrations", "merchant"),
    ("GET", "/app/b/{bid}/integrations/webhooks/new", "merchant"),
    ("POST", "/app/b/{bid}/integrations/webhooks", "merchant"),
    ("GET", "/app/b/{bid}/integrations/{iid}", "merchant"),
    ("POST", "/app/b/{bid}/integrations/{iid}/deliveries/{did}/resend", "merchant"),
    ("POST", "/app/b/{bid}/integrations/{iid}/replay", "merchant"),
    ("POST", "/app/b/{bid}/integrations/{iid}/toggle", "merchant"),
    ("POST", "/app/b/{bid}/integrations/{iid}/delete", "merchant"),
    ("GET", "/app/b/{bid}/integrations/preview", "merchant"),
    ("GET", "/app/b/{bid}/integrations/email/new", "merchant"),
    ("POST", "/app/b/{bid}/integrations/email", "merchant"),
    ("GET", "/app/b/{bid}/integrations/telegram/new", "merchant"),
    ("POST", "/app/b/{bid}/integrations/telegram", "merchant"),
    ("GET", "/app/b/{bid}/integrations/zalo/new", "merchant"),
    ("POST", "/app/b/{bid}/integrations/zalo/banks", "merchant"),
    ("GET", "/app/b/{bid}/integrations/zalo/account", "merchant"),
    ("GET", "/app/b/{bid}/integrations/zalo/login", "merchant"),
    ("GET", "/app/zalo/callback", "merchant"),
    ("GET", "/app/b/{bid}/integrations/zalo/fields", "merchant"),
    ("POST", "/app/b/{bid}/integrations/zalo/fields", "merchant"),
    ("GET", "/app/b/{bid}/integrations/zalo/test", "merchant"),
    ("POST", "/app/b/{bid}/integrations/zalo/test", "merchant"),
    ("POST", "/app/b/{bid}/integrations/zalo/save", "merchant"),
    ("POST", "/app/b/{bid}/integrations/{iid}/settings", "merchant"),
    ("POST", "/app/b/{bid}/integrations/{iid}/recipients/{rid}/remove", "merchant"),
    // Authenticated by the OA's signature over the raw body, not by a session.
    ("POST", "/zalo/webhook", "public"),
    ("GET", "/app/b/{bid}/api", "merchant"),
    ("POST", "/app/b/{bid}/api/keys", "merchant"),
    ("POST", "/app/b/{bid}/api/keys/{kid}/revoke", "merchant"),
    // The public API: authenticated by its key or token (401 JSON), never by a session.
    ("GET", "/oauth/authorize", "merchant"),
    ("POST", "/oauth/authorize", "merchant"),
    ("POST", "/oauth/token", "public"),
    ("POST", "/oauth/revoke", "public"),
    ("GET", "/app/developer", "merchant"),
    ("POST", "/app/developer/apps", "merchant"),
    ("POST", "/app/developer/apps/{id}/delete", "merchant"),
    ("POST", "/app/b/{bid}/api/grants/{gid}/revoke", "merchant"),
    ("GET", "/v2/openapi.json", "public"),
    ("GET", "/docs/api", "public"),
    ("POST", "/v1/token", "public"),
    ("GET", "/v2/userInfo", "public"),
    ("GET", "/v2/transactions", "public"),
    ("GET", "/v2/transactions/{id}", "public"),
    ("GET", "/v2/accounts", "public"),
    ("GET", "/v2/accounts/{id}", "public"),
    ("POST", "/v2/sync", "public"),
    ("POST", "/v2/webhooks", "public"),
    ("DELETE", "/v2/webhooks", "public"),
    ("GET", "/v2/webhooks/{id}", "public"),
    ("PUT", "/v2/webhooks/{id}", "public"),
    ("DELETE", "/v2/webhooks/{id}", "public"),
    // Authenticated by the hook's own signature, not by a session.
    ("POST", "/bank-hooks/{key}", "public"),
    ("GET", "/admin/businesses", "admin"),
    ("GET", "/admin/businesses/{id}", "admin"),
    ("POST", "/admin/businesses/{id}/plan", "admin"),
    ("POST", "/admin/businesses/{id}/merchant", "admin"),
    ("POST", "/merchants/{id}/business", "sale,leader"),
    ("GET", "/healthz", "public"),
    ("GET", "/login", "public"),
    ("POST", "/login", "public"),
    ("POST", "/logout", "signedin"),
    ("GET", "/setup", "public"),
    ("POST", "/setup", "public"),
    ("GET", "/account/password", "signedin"),
    ("POST", "/account/password", "signedin"),
    ("GET", "/admin/users", "admin"),
    ("GET", "/admin/users/new", "admin"),
    ("POST", "/admin/users", "admin"),
    ("GET", "/admin/users/{id}", "admin"),
    ("POST", "/admin/users/{id}", "admin"),
    ("POST", "/admin/users/{id}/disable", "admin"),
    ("POST", "/admin/users/{id}/enable", "admin"),
    ("POST", "/admin/users/{id}/password", "admin"),
    ("GET", "/admin/audit", "admin"),
    ("GET", "/mail", "sale,leader"),
    ("GET", "/mail/export", "sale,leader"),
    ("GET", "/mail/upload", "sale,leader"),
    ("POST", "/mail/upload", "sale,leader"),
    ("GET", "/mail/unreadable", "sale,leader"),
    ("POST", "/mail/blobs/{id}/retry", "sale,leader"),
    ("GET", "/mail/blobs/{id}/raw", "sale,leader"),
    ("GET", "/mail/{id}", "sale,leader"),
    ("GET", "/mail/{id}/attachments/{aid}", "sale,leader"),
    ("GET", "/mail/{id}/attachments/{aid}/view", "sale,leader"),
    ("POST", "/mail/{id}/not-relevant", "sale,leader"),
    ("POST", "/mail/{id}/reopen", "sale,leader"),
    ("POST", "/mail/{id}/reclassify", "sale,leader"),
    ("GET", "/admin/mail-rules", "admin"),
    ("POST", "/admin/mail-rules", "admin"),
    ("POST", "/admin/mail-rules/{id}/toggle", "admin"),
    ("POST", "/admin/mail-rules/{id}/delete", "admin"),
    ("GET", "/requests", "staff"),
    ("GET", "/requests/export", "staff"),
    ("GET", "/requests/new", "sale,leader"),
    ("POST", "/requests", "sale,leader"),
    ("POST", "/requests/attach-mail", "sale,leader"),
    ("GET", "/requests/{id}", "staff"),
    ("POST", "/requests/{id}/transition", "sale,leader"),
    ("GET", "/requests/{id}/accept", "sale,leader"),
    ("POST", "/requests/{id}/accept", "sale,leader"),
    ("POST", "/requests/{id}/confirmations", "leader"),
    ("POST", "/requests/{id}/confirmations/{cid}/revoke", "sale,leader"),
    ("POST", "/requests/{id}/comments", "staff"),
    ("POST", "/requests/{id}/assign", "sale,leader"),
    ("GET", "/my", "staff"),
    ("GET", "/account/settings", "staff"),
    ("POST", "/account/settings", "staff"),
    ("GET", "/merchants", "staff"),
    ("GET", "/merchants/{id}", "staff"),
    ("GET", "/admin/partners", "admin"),
    ("GET", "/admin/partners/new", "admin"),
    ("POST", "/admin/partners", "admin"),
    ("GET", "/admin/partners/{id}", "admin"),
    ("POST", "/admin/partners/{id}", "admin"),
    ("POST", "/admin/partners/{id}/disable", "admin"),
    ("POST", "/admin/partners/{id}/enable", "admin"),
    ("GET", "/customers", "sale,leader"),
    ("POST", "/customers", "sale,leader"),
    ("GET", "/customers/{id}/edit", "sale,leader"),
    ("POST", "/customers/{id}/edit", "sale,leader"),
    ("GET", "/merchants/{id}/edit", "sale,leader"),
    ("POST", "/merchants/{id}/edit", "sale,leader"),
    ("GET", "/points/{id}/edit", "sale,leader"),
    ("POST", "/points/{id}/edit", "sale,leader"),
    ("GET", "/dashboard", "staff"),
    ("GET", "/admin/ageing", "admin"),
    ("POST", "/admin/ageing", "admin"),
    ("GET", "/admin/jobs", "admin"),
    ("GET", "/admin/jobs/{id}", "admin"),
    ("POST", "/admin/jobs/{id}/retry", "admin"),
    ("POST", "/admin/jobs/{id}/discard", "admin"),
    ("GET", "/mail/sent", "sale,leader"),
    ("GET", "/mail/sent/{id}", "sale,leader"),
    ("GET", "/mail/sent/{id}/raw", "sale,leader"),
    ("GET", "/requests/{id}/pyc/new", "sale,leader"),
    ("POST", "/requests/{id}/pyc", "sale,leader"),
    ("GET", "/pyc", "staff"),
    ("GET", "/pyc/export", "staff"),
    ("GET", "/pyc/{id}", "staff"),
    ("POST", "/pyc/{id}", "sale,leader"),
    ("POST", "/pyc/{id}/review", "leader"),
    ("POST", "/pyc/{id}/create", "sale,leader"),
    ("POST", "/pyc/{id}/technician", "sale,leader"),
    ("POST", "/pyc/{id}/items/{iid}", "technician"),
    ("POST", "/pyc/{id}/data", "technician"),
    ("POST", "/pyc/{id}/screenshot", "technician"),
    ("GET", "/pyc/{id}/screenshot", "staff"),
    ("POST", "/pyc/{id}/reveal", "technician,leader"),
    ("POST", "/pyc/{id}/deployed", "technician"),
    ("GET", "/pyc/{id}/reply", "sale,leader,technician"),
    ("POST", "/pyc/{id}/reply", "sale,leader,technician"),
    ("POST", "/pyc/{id}/invoice", "sale,accountant"),
    ("GET", "/admin/pyc-templates", "admin"),
    ("POST", "/admin/pyc-templates", "admin"),
    ("POST", "/admin/pyc-templates/{id}/disable", "admin"),
    ("POST", "/admin/pyc-templates/{id}/enable", "admin"),
    ("GET", "/reports", "accountant"),
    ("GET", "/reports/{month}/xlsx", "accountant"),
    ("GET", "/reports/reconcile", "accountant"),
    ("POST", "/reports/reconcile", "accountant"),
    ("GET", "/reports/reconcile/{id}", "accountant"),
    ("POST", "/reports/reconcile/{id}/run", "accountant"),
    ("GET", "/reports/reconcile/{id}/xlsx", "accountant"),
    // Authenticated by its own bearer token, not by a session.
    ("POST", "/inbound/mail", "public"),
];

#[derive(Debug, PartialEq)]
enum Outcome {
    Allowed,
    Forbidden,
    Login,
}

/// Who asks: nobody, a staff member holding one role, or a merchant account.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    Staff(Role),
    Merchant,
}

fn expected(rule: &str, who: Who) -> Outcome {
    match (rule, who) {
        ("public", _) => Outcome::Allowed,
        (_, Who::Anonymous) => Outcome::Login,
        ("signedin", _) => Outcome::Allowed,
        ("merchant", Who::Merchant) => Outcome::Allowed,
        (_, Who::Merchant) | ("merchant", _) => Outcome::Forbidden,
        ("staff", Who::Staff(_)) => Outcome::Allowed,
        (_, Who::Staff(Role::Admin)) => Outcome::Allowed,
        (roles, Who::Staff(r)) if roles.split(',').any(|x| x.trim() == r.code()) => Outcome::Allowed,
        _ => Outcome::Forbidden,
    }
}

#[test]
fn every_route_is_in_the_matrix() {
    let declared: std::collections::BTreeSet<(String, String)> =
        hubgate::web::all_routes().iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    let listed: std::collections::BTreeSet<(String, String)> =
        EXPECTED.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = declared.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&declared).collect();
    assert!(missing.is_empty(), "routes without an expected rule in tests/it/roles.rs: {missing:?}");
    assert!(stale.is_empty(), "rules for routes that no longer exist: {stale:?}");
}

db_test!(role_matrix, |app| {
    let mut people: Vec<(Who, crate::support::Browser)> = vec![(Who::Anonymous, app.browser())];
    for role in Role::ALL {
        let email = format!("{}@ipos.vn", role.code());
        app.create_user(&email, &[role]);
        people.push((Who::Staff(role), app.login(&email).await));
    }
    let merchant = app.create_merchant("chu-quan@cafe.vn");
    people.push((Who::Merchant, app.login("chu-quan@cafe.vn").await));
    // Logout last: it ends the session the other checks need.
    let mut routes: Vec<_> = EXPECTED.to_vec();
    routes.sort_by_key(|(_, p, _)| *p == "/logout");
    let mut failures = Vec::new();
    let uploads: Vec<&str> = hubgate::web::all_routes()
        .iter()
        .filter(|r| r.body == hubgate::web::access::Body::Upload)
        .map(|r| r.path)
        .collect();
    // Real rows, so that allowed roles reach the handler's real work instead of a 404
    // (a crash on a real row is a 500 in some cell). Kinds with no row seeded here keep
    // an id no row has.
    let victim = app.create_user("nhan-vien-cu@ipos.vn", &[Role::Sale]);
    let business = app.create_business(&merchant, "Quán Thử Quyền");
    crate::support::ingest_corpus(&app, "a01");
    crate::support::ingest_corpus(&app, "f01");
    let cfg = app.state.config.mail.clone();
    let raw = crate::desk::mail_with_files("vai-tro");
    app.with_conn(|c| hubgate::mail::inbound::service::ingest(c, &cfg, &raw, "test", None))
        .unwrap_or_else(|e| panic!("{e:?}"));
    crate::hub::seed_request(&app, "MOMO", "Phở Thử Quyền", "received");
    let first = |table: &str| -> String {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            id: Option<i64>,
        }
        let sql = format!("SELECT MIN(id) AS id FROM {table}");
        let row: Option<Row> = app.with_conn(|c| diesel::RunQueryDsl::get_result(diesel::sql_query(sql), c).ok());
        row.and_then(|r| r.id).map_or_else(|| "999999".to_string(), |id| id.to_string())
    };
    // The table behind a path's {id}, by its prefix (longest first).
    let id_tables = [
        ("/admin/users/", victim.id.to_string()),
        ("/mail/blobs/", first("mail_blobs")),
        ("/mail/sent/", first("mail_outbox")),
        ("/mail/", first("mail_messages")),
        ("/admin/mail-rules/", first("mail_rules")),
        ("/requests/", first("requests")),
        ("/merchants/", first("merchants")),
        ("/admin/partners/", first("partners")),
        ("/customers/", first("customers")),
        ("/points/", first("points")),
        ("/admin/jobs/", first("jobs")),
        ("/pyc/", first("pycs")),
        ("/admin/pyc-templates/", first("pyc_templates")),
        ("/admin/businesses/", business.to_string()),
    ];
    let attachment = first("mail_attachments");
    let business = business.to_string();
    let seeded = id_tables.iter().filter(|(_, id)| id != "999999").count();
    assert!(seeded >= 10, "rows seeded for most kinds: {id_tables:?}");
    for (method, path, rule) in routes {
        let id = id_tables.iter().find(|(prefix, _)| path.starts_with(prefix)).map_or("999999", |(_, id)| id.as_str());
        let aid = if path.starts_with("/mail/") { attachment.as_str() } else { "999999" };
        let none = "999999";
        let values = [
            ("{id}", id),
            ("{aid}", aid),
            ("{bid}", business.as_str()),
            ("{provider}", "google"),
            ("{bin}", "970436"),
            ("{bank}", "OCB"),
            ("{key}", "no-such-key"),
            ("{month}", "2026-10"),
        ];
        let url = values.iter().fold(path.to_string(), |url, (k, v)| url.replace(k, v));
        // The rest ({cid}, {iid}, {mid}, {tid}, {did}, {rid}, {kid}, {gid}): no such row.
        let url = ["{cid}", "{iid}", "{mid}", "{tid}", "{did}", "{rid}", "{kid}", "{gid}"]
            .iter()
            .fold(url, |url, k| url.replace(k, none));
        for (who, browser) in &people {
            let page = match method {
                "GET" => browser.get(&url).await,
                "POST" if uploads.contains(&path) => browser.upload(&url, |f| f).await,
                "POST" => browser.post(&url, &[]).await,
                other => browser.send(other, &url).await,
            };
            let got = if page.redirects_to_login() {
                Outcome::Login
            } else if page.status == 403 {
                Outcome::Forbidden
            } else {
                Outcome::Allowed
            };
            let want = expected(rule, *who);
            if page.status >= 500 {
                failures.push(format!("{method} {url} as {who:?}: server error {}", page.status));
            } else if got != want {
                failures.push(format!("{method} {path} as {who:?}: expected {want:?}, got {got:?} ({})", page.status));
            }
        }
    }
    assert!(failures.is_empty(), "role matrix mismatches:\n{}", failures.join("\n"));
});
