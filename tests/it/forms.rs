//! Forms that cannot be replayed or leak their token (issue 16).
//!
//! Uploads carry the CSRF token as their first multipart field, are checked after the
//! route's guard and before any file is read, and are bounded in file count and total
//! size. Create forms carry a per-render `_once` token: sending one render twice (or
//! four times at once) creates one row and answers the same redirect each time.

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use hubgate::accounts::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Browser, Page, TestApp};

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of `from` (a table, maybe with a WHERE clause).
fn count(app: &TestApp, from: &str) -> i64 {
    app.with_conn(|c| diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {from}")).get_result::<N>(c))
        .unwrap_or_else(|e| panic!("count {from}: {e}"))
        .n
}

/// The `_once` value of the form posting to `action` on this page.
fn once_of(page: &Page, action: &str) -> String {
    let form = page
        .body
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form to {action} on the page:\n{}", page.body));
    let marker = "name=\"_once\" value=\"";
    let start = page.body[form..].find(marker).map(|i| form + i + marker.len()).unwrap_or_else(|| {
        panic!("the form to {action} has no _once field");
    });
    let end = page.body[start..].find('"').map(|i| start + i).unwrap_or(start);
    let token = page.body[start..end].to_string();
    assert!(token.len() >= 32, "a random token, got {token:?}");
    token
}

/// One create form, checked: a render sent twice, then a render sent four times at
/// once, each makes one row and answers one redirect; two renders make two rows.
async fn creates_once(app: &TestApp, b: &Browser, page: &str, action: &str, fields: &[&[(&str, &str)]], rows: &str) {
    let before = count(app, rows);
    let send = |once: &str, fields: &[(&str, &str)]| {
        let mut all: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.push(("_once".into(), once.to_string()));
        async move {
            let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            b.post(action, &all).await
        }
    };
    let (first, second) = (fields[0], fields.get(1).copied().unwrap_or(fields[0]));

    let once = once_of(&b.get(page).await, action);
    let a = send(&once, first).await;
    let again = send(&once, first).await;
    assert_eq!(a.status, 303, "{action}: {}", a.body);
    assert_eq!((again.status, &again.location), (303, &a.location), "{action}: the second click answers the same");
    assert_eq!(count(app, rows), before + 1, "{action}: a form sent twice creates one row");

    let once = once_of(&b.get(page).await, action);
    let answers = futures_util::future::join_all((0..4).map(|_| send(&once, second))).await;
    for r in &answers {
        assert_eq!(r.status, 303, "{action} at once: {}", r.body);
        assert_eq!(r.location, answers[0].location, "{action}: concurrent submissions answer the same");
    }
    assert_eq!(count(app, rows), before + 2, "{action}: four concurrent submissions create one row");
}

async fn desk(app: &TestApp) -> (Browser, i64) {
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    let b = app.login("leader@ipos.vn").await;
    let momo = crate::support::partner_id(app, "MOMO").to_string();
    let r = b
        .post("/requests", &[("partner_id", momo.as_str()), ("merchant_name", "Phở Thìn"), ("point_name", "Lò Đúc")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let id = r.location.as_deref().and_then(|l| l.rsplit('/').next()).and_then(|s| s.parse().ok()).unwrap_or(-1);
    (b, id)
}

db_test!(create_forms_act_once_per_render, |app| {
    let (b, id) = desk(&app).await;
    let momo = crate::support::partner_id(&app, "MOMO").to_string();
    let request = format!("/requests/{id}");

    let open: &[(&str, &str)] =
        &[("partner_id", &momo), ("merchant_name", "Bún Chả Hương Liên"), ("point_name", "Lê Văn Hưu")];
    creates_once(&app, &b, "/requests/new", "/requests", &[open], "requests").await;
    let comment: &[(&str, &str)] = &[("body", "Đã gọi cho chị Lan")];
    creates_once(
        &app,
        &b,
        &request,
        &format!("{request}/comments"),
        &[comment],
        "request_events WHERE kind = 'comment'",
    )
    .await;
    let confirm: &[(&str, &str)] = &[("kind", "merchant"), ("reason", "Merchant xác nhận qua điện thoại")];
    creates_once(&app, &b, &request, &format!("{request}/confirmations"), &[confirm], "confirmations").await;

    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let admin = app.login("admin@ipos.vn").await;
    let customer: &[(&str, &str)] = &[("name", "Công ty TNHH Phở Thìn"), ("tax_code", "0101234567")];
    creates_once(&app, &admin, "/customers", "/customers", &[customer], "customers").await;
    let template: &[(&str, &str)] = &[("kind", "payment"), ("body", "Ghi chú mẫu"), ("items", "*Cài app\nKiểm tra")];
    creates_once(&app, &admin, "/admin/pyc-templates", "/admin/pyc-templates", &[template], "pyc_templates").await;
    // A rule may exist once, so the second render names another keyword.
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let rule_a: Fields = &[("kind", "request"), ("pattern", "thử nghiệm một")];
    let rule_b: Fields = &[("kind", "request"), ("pattern", "thử nghiệm hai")];
    creates_once(&app, &admin, "/admin/mail-rules", "/admin/mail-rules", &[rule_a, rule_b], "mail_rules").await;

    // A failed create keeps nothing: the corrected form, same render, goes through.
    let page = b.get(&request).await;
    let once = once_of(&page, &format!("{request}/comments"));
    let before = count(&app, "request_events WHERE kind = 'comment'");
    let empty = b.post(&format!("{request}/comments"), &[("body", " "), ("_once", &once)]).await;
    assert_eq!(empty.status, 303);
    assert!(b.get(&request).await.body.contains("Nội dung bình luận trống."));
    let fixed = b.post(&format!("{request}/comments"), &[("body", "Đã sửa"), ("_once", &once)]).await;
    assert_eq!(fixed.status, 303);
    assert_eq!(count(&app, "request_events WHERE kind = 'comment'"), before + 1);

    // A made-up token is refused, not stored.
    let forged = b.post(&format!("{request}/comments"), &[("body", "x"), ("_once", "<script>")]).await;
    assert_eq!(forged.status, 422);
    assert!(forged.body.contains("Biểu mẫu không hợp lệ"));

    // Tokens are per person: another user's identical token is another submission.
    let shared = "cung-mot-gia-tri-cho-hai-nguoi-dung-khac-nhau";
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let before = count(&app, "request_events WHERE kind = 'comment'");
    for who in [&b, &sale] {
        assert_eq!(
            who.post(&format!("{request}/comments"), &[("body", "Cùng mã"), ("_once", shared)]).await.status,
            303
        );
    }
    assert_eq!(count(&app, "request_events WHERE kind = 'comment'"), before + 2);

    // Old submissions are forgotten by the hourly prune.
    let removed = app.with_conn(|c| {
        hubgate::web::once::prune(c, hubgate::db::now() + chrono::Duration::hours(1)).unwrap_or_default()
    });
    assert!(removed >= 10, "pruned {removed}");
    assert_eq!(count(&app, "form_submissions"), 0);
});

db_test!(the_pyc_form_acts_once, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let id = crate::pyc::accepted_momo_request(&app, &sale).await;
    let page = sale.get(&format!("/requests/{id}/pyc/new")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let once = once_of(&page, &format!("/requests/{id}/pyc"));
    let mut fields = crate::pyc::MOMO_PYC.to_vec();
    fields.push(("_once", once.as_str()));
    let path = format!("/requests/{id}/pyc");
    let answers = futures_util::future::join_all((0..4).map(|_| sale.post(&path, &fields))).await;
    for r in &answers {
        assert_eq!((r.status, &r.location), (303, &answers[0].location), "{}", r.body);
    }
    assert_eq!(count(&app, "pycs"), 1);
});

/// A create form whose first answer shows a secret once (200): a render sent twice,
/// then four times at once, makes one row; the repeats are sent to `list` with the
/// message that the form was already sent, and never show a second secret.
async fn shows_once(app: &TestApp, b: &Browser, page: &str, action: &str, fields: &[(&str, &str)], rows: &str) {
    let before = count(app, rows);
    let send = |once: String| async move {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("_once", once.as_str()));
        b.post(action, &all).await
    };
    let once = once_of(&b.get(page).await, action);
    let first = send(once.clone()).await;
    assert_eq!(first.status, 200, "{action}: {}", first.body);
    assert!(first.body.contains("chỉ hiển thị một lần"), "{action}: the secret is shown");
    let again = send(once).await;
    assert_eq!((again.status, again.location.as_deref()), (303, Some(page)), "{action}: {}", again.body);
    assert_eq!(count(app, rows), before + 1, "{action}: a form sent twice creates one row");
    let told = b.get(page).await;
    assert!(told.body.contains("Biểu mẫu này đã được gửi"), "{action}: the repeat is told why:\n{}", told.body);

    let once = once_of(&b.get(page).await, action);
    let answers = futures_util::future::join_all((0..4).map(|_| send(once.clone()))).await;
    let shown = answers.iter().filter(|r| r.status == 200).count();
    let sent_back = answers.iter().filter(|r| r.status == 303 && r.location.as_deref() == Some(page)).count();
    assert_eq!((shown, sent_back), (1, 3), "{action}: one shows the secret, the others go back to the list");
    assert_eq!(count(app, rows), before + 2, "{action}: four concurrent submissions create one row");
}

db_test!(merchant_create_forms_act_once_per_render, |app| {
    let owner = app.create_merchant("chu@banhmi.vn");
    let b = app.login("chu@banhmi.vn").await;
    let shop: &[(&str, &str)] = &[("name", "Bánh Mì Phượng"), ("website", "banhmiphuong.vn"), ("feature", "sync")];
    creates_once(&app, &b, "/app/businesses/new", "/app/businesses", &[shop], "businesses").await;
    let bid = app.create_business(&owner, "Cà Phê Giảng");
    let members = format!("/app/b/{bid}/members");
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let lan: Fields = &[("email", "lan@caphegiang.vn"), ("role", "viewer")];
    let minh: Fields = &[("email", "minh@caphegiang.vn"), ("role", "manager")];
    let invitations = format!("business_invitations WHERE business_id = {bid}");
    creates_once(&app, &b, &members, &format!("{members}/invite"), &[lan, minh], &invitations).await;
    assert!(app.last_mail_to("lan@caphegiang.vn", "Lời mời").is_some());
    let connections = format!("bank_connections WHERE business_id = {bid}");
    let connect = format!("/app/b/{bid}/connect");
    creates_once(&app, &b, &connect, &format!("/app/b/{bid}/connect-demo"), &[&[]], &connections).await;

    let api = format!("/app/b/{bid}/api");
    let keys = format!("api_keys WHERE business_id = {bid}");
    shows_once(&app, &b, &api, &format!("{api}/keys"), &[("name", "Phần mềm bán hàng")], &keys).await;
    let app_fields: Fields = &[
        ("name", "Kế toán Giảng"),
        ("website", "https://ketoan.example.vn"),
        ("redirect_uris", "https://ketoan.example.vn/cb"),
        ("confidential", "1"),
    ];
    shows_once(&app, &b, "/app/developer", "/app/developer/apps", app_fields, "oauth_apps").await;

    // A notification channel: the repeat gets its form back with the reason.
    let (page, action) = (format!("/app/b/{bid}/integrations/email/new"), format!("/app/b/{bid}/integrations/email"));
    let channels = format!("integrations WHERE business_id = {bid}");
    let send = |once: String| {
        let action = action.clone();
        let b = &b;
        async move {
            let fields = [("name", "Kế toán"), ("addresses", "ketoan@caphegiang.vn"), ("digest_minutes", "0")];
            let mut all = fields.to_vec();
            all.push(("_once", once.as_str()));
            b.post(&action, &all).await
        }
    };
    let once = once_of(&b.get(&page).await, &action);
    assert_eq!(send(once.clone()).await.status, 303);
    let again = send(once).await;
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(again.body.contains("Biểu mẫu này đã được gửi"), "{}", again.body);
    assert_eq!(count(&app, &channels), 1);
    let once = once_of(&b.get(&page).await, &action);
    let answers = futures_util::future::join_all((0..4).map(|_| send(once.clone()))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
    assert_eq!(count(&app, &channels), 2, "four concurrent submissions save one channel");
});

// ---- Uploads -------------------------------------------------------------------

/// A browser session cookie for `email`, for hand-written requests.
async fn session_cookie(app: &TestApp, email: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let cookie_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("hubgate_session="))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
    };
    let login = http.get(format!("{}/login", app.base)).send().await.unwrap_or_else(|e| panic!("{e}"));
    let cookie = cookie_of(&login).unwrap_or_default();
    let body = login.text().await.unwrap_or_default();
    let token = Page { status: 200, location: None, body }.csrf().unwrap_or_default();
    let r = http
        .post(format!("{}/login", app.base))
        .header("cookie", &cookie)
        .form(&[("_csrf", token.as_str()), ("email", email), ("password", crate::support::PASSWORD)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 303);
    cookie_of(&r).unwrap_or_else(|| panic!("no session cookie"))
}

/// Sends the head of an upload announcing a 10 GB body and only its first bytes, and
/// returns the status line of the answer. A server that read the body before
/// answering would never answer: the rest of the body never comes (the read gives up
/// after a minute and fails the test).
async fn answer_to_endless_upload(app: &TestApp, path: &str, cookie: Option<&str>, first_part: &str) -> String {
    let first = format!("--XyZ\r\n{first_part}");
    answer_to_endless_body(app, path, cookie, "multipart/form-data; boundary=XyZ", 10_737_418_240, &first).await
}

/// The same for any body: `length` announced, `first` and 64 KB sent, then silence.
async fn answer_to_endless_body(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    content_type: &str,
    length: u64,
    first: &str,
) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Content-Type: {content_type}\r\n\
         Content-Length: {length}\r\n\r\n{first}"
    );
    s.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&vec![b'a'; 64 * 1024]).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer before the body was sent"));
    String::from_utf8_lossy(&got).to_string()
}

/// Sends an upload with a valid token in chunked encoding (no length announced): the
/// token part, then `bytes` of file; returns the answer (head and the start of its body).
async fn chunked_upload(app: &TestApp, cookie: &str, bytes: usize) -> String {
    let http = reqwest::Client::new();
    let home = http.get(format!("{}/mail/upload", app.base)).header("cookie", cookie).send().await;
    let body = match home {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!("{e}"),
    };
    let token = Page { status: 200, location: None, body }.csrf().unwrap_or_default();
    let addr = app.base.trim_start_matches("http://").to_string();
    let s = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("{e}"));
    let (mut rd, mut wr) = s.into_split();
    let chunk = |data: &[u8]| [format!("{:x}\r\n", data.len()).into_bytes(), data.to_vec(), b"\r\n".to_vec()].concat();
    let write = async move {
        let head = format!(
            "POST /mail/upload HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\
             Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let first =
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{token}\r\n--XyZ\r\n{FILE_PART}");
        let mut out = head.into_bytes();
        out.extend(chunk(first.as_bytes()));
        if wr.write_all(&out).await.is_err() {
            return;
        }
        let block = chunk(&vec![b'z'; 64 * 1024]);
        for _ in 0..bytes / (64 * 1024) {
            // The server may answer and stop reading before the end: that is the point.
            if wr.write_all(&block).await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    };
    let read = async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("</html>") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).to_string()
    };
    let deadline = std::time::Duration::from_secs(60);
    let ((), answer) = tokio::time::timeout(deadline, async { tokio::join!(write, read) })
        .await
        .unwrap_or_else(|_| panic!("no answer to the chunked upload"));
    answer
}

const FILE_PART: &str = "Content-Disposition: form-data; name=\"files\"; filename=\"a.eml\"\r\n\r\n";

/// Sends a GET head in one write, as a browser does, and returns the answer's head.
async fn answer_to_get(app: &TestApp, path: &str, cookie: &str) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let read = s.read_to_end(&mut got);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), read).await;
    let got = String::from_utf8_lossy(&got).to_string();
    got.split("\r\n\r\n").next().unwrap_or_default().to_string()
}

/// A signed-in URL over 8 KB (a pasted search) is answered like any other. A server
/// waiting for more of the head would answer 408 once its timeout passed, which is
/// what curl 7.88 gets: it drops a cookie that would pass its own header limit and
/// sends a head without its closing blank line. A URL longer than the server reads is
/// refused at once.
#[actix_web::test]
async fn long_signed_in_urls_are_answered() {
    let app = TestApp::start(hubgate::db::Backend::Sqlite).await;
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = session_cookie(&app, "sale@ipos.vn").await;
    let long = answer_to_get(&app, &format!("/requests?q={}", "a".repeat(9_000)), &sale).await;
    assert!(long.starts_with("HTTP/1.1 200"), "{long}");
    let endless = answer_to_get(&app, &format!("/requests?q={}", "a".repeat(70_000)), &sale).await;
    assert!(endless.starts_with("HTTP/1.1 4") && !endless.starts_with("HTTP/1.1 408"), "{endless}");
}

db_test!(uploads_are_checked_before_their_body_is_read, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    // Nobody signed in: sent to the login page.
    let anon = answer_to_endless_upload(&app, "/mail/upload", None, FILE_PART).await;
    assert!(anon.starts_with("HTTP/1.1 303"), "{anon}");
    assert!(anon.contains("location: /login?next="), "{anon}");
    // The wrong role: 403.
    let accountant = session_cookie(&app, "ketoan@ipos.vn").await;
    let wrong = answer_to_endless_upload(&app, "/mail/upload", Some(&accountant), FILE_PART).await;
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    // The right role, body over the bound by its own account: 413 at once.
    let sale = session_cookie(&app, "sale@ipos.vn").await;
    let big = answer_to_endless_upload(&app, "/mail/upload", Some(&sale), FILE_PART).await;
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    assert_eq!(count(&app, "mail_messages"), 0);
    assert_eq!(count(&app, "mail_blobs"), 0);
});

db_test!(forms_are_refused_by_their_guard_before_their_body_is_read, |app| {
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    // A form body within the size a form may have (below the mail-size limit), announced
    // but never sent whole: a server that read it before its guard would never answer.
    let length = (app.state.config.mail.max_message_bytes / 2) as u64;
    let form = "application/x-www-form-urlencoded";
    let anon = answer_to_endless_body(&app, "/requests/1/comments", None, form, length, "_csrf=x&body=").await;
    assert!(anon.starts_with("HTTP/1.1 303"), "{anon}");
    assert!(anon.contains("location: /login?next="), "{anon}");
    let accountant = session_cookie(&app, "ketoan@ipos.vn").await;
    let wrong = answer_to_endless_body(&app, "/requests/1/transition", Some(&accountant), form, length, "to=").await;
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
});

db_test!(an_upload_without_its_token_first_is_refused, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let b = app.login("sale@ipos.vn").await;
    let token = b.token().await;
    let raw = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mail/a01-momo-request-outlook.eml"))
        .unwrap_or_default();
    let file = || reqwest::multipart::Part::bytes(raw.clone()).file_name("a01.eml");
    // In the URL only (the old way): refused.
    let r = b
        .multipart(&format!("/mail/upload?_csrf={token}"), reqwest::multipart::Form::new().part("files", file()))
        .await;
    assert_eq!(r.status, 403);
    // After the file: refused, the file unread.
    let late = reqwest::multipart::Form::new().part("files", file()).text("_csrf", token.clone());
    assert_eq!(b.multipart("/mail/upload", late).await.status, 403);
    // A forged one: refused.
    let forged = reqwest::multipart::Form::new().text("_csrf", "gia-mao").part("files", file());
    assert_eq!(b.multipart("/mail/upload", forged).await.status, 403);
    assert_eq!(count(&app, "mail_messages"), 0);
    // First, as the page sends it: stored.
    let ok = b.upload("/mail/upload", |f| f.part("files", file())).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(count(&app, "mail_messages"), 1);
});

db_test!(multipart_is_refused_on_routes_that_take_no_upload, |app| {
    let (b, id) = desk(&app).await;
    let token = b.token().await;
    let before = count(&app, "request_events WHERE kind = 'comment'");
    // Without a token, and even with the real one as a first field: a multipart body
    // is not a form the middleware reads, so these routes refuse it.
    for form in [
        reqwest::multipart::Form::new().text("body", "Bình luận giả"),
        reqwest::multipart::Form::new().text("_csrf", token.clone()).text("body", "Bình luận giả"),
    ] {
        let r = b.multipart(&format!("/requests/{id}/comments"), form).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let r = b
        .multipart(&format!("/requests/{id}/transition"), reqwest::multipart::Form::new().text("to", "cancelled"))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(count(&app, "request_events WHERE kind = 'comment'"), before);
    let state: String = app
        .with_conn(|c| {
            use diesel::{ExpressionMethods, QueryDsl};
            use hubgate::db::schema::requests;
            requests::table.filter(requests::id.eq(id)).select(requests::state).first(c)
        })
        .unwrap_or_default();
    assert_eq!(state, "received");
});

mod upload_bounds {
    use super::*;

    async fn run(backend: hubgate::db::Backend) {
        let Some(app) = TestApp::start_with(backend, |c| {
            c.upload.max_files = 2;
            c.upload.max_bytes = 1024 * 1024;
        })
        .await
        else {
            return;
        };
        app.create_user("sale@ipos.vn", &[Role::Sale]);
        let b = app.login("sale@ipos.vn").await;
        let raw = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mail/a01-momo-request-outlook.eml"))
            .unwrap_or_default();
        let file = |name: &str| reqwest::multipart::Part::bytes(raw.clone()).file_name(name.to_string());

        // Three files where two are allowed: refused whole, none stored.
        let r = b
            .upload("/mail/upload", |f| {
                f.part("files", file("1.eml")).part("files", file("2.eml")).part("files", file("3.eml"))
            })
            .await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert!(r.body.contains("tối đa 2 tệp"), "{}", r.body);
        assert_eq!(count(&app, "mail_blobs"), 0);

        // Over the size bound, announced (Content-Length) and streamed (chunked): 413.
        let big = vec![b'x'; 700 * 1024];
        let r = b
            .upload("/mail/upload", |f| {
                f.part("files", reqwest::multipart::Part::bytes(big.clone()).file_name("a.eml"))
                    .part("files", reqwest::multipart::Part::bytes(big.clone()).file_name("b.eml"))
            })
            .await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert!(r.body.contains("vượt quá 1 MB"), "{}", r.body);
        let streamed = chunked_upload(&app, &session_cookie(&app, "sale@ipos.vn").await, 2 * 1024 * 1024).await;
        assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
        assert!(streamed.contains("Không tệp nào được lưu"), "{streamed}");
        assert_eq!(count(&app, "mail_blobs"), 0);

        // Within the bounds: stored.
        let r = b.upload("/mail/upload", |f| f.part("files", file("1.eml")).part("files", file("2.eml"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(count(&app, "mail_blobs") >= 1);
    }

    crate::on_both_backends!(run);
}

// ---- No token in any URL ----------------------------------------------------------

/// Whether an `action` or `href` attribute of the page carries a CSRF token.
fn token_in_url(body: &str) -> Option<String> {
    let re = regex::Regex::new(r#"(?i)(action|href|src)\s*=\s*["'][^"']*_csrf="#).ok()?;
    re.find(body).map(|m| m.as_str().to_string())
}

/// Same-site links and form actions of a page, without query strings' page numbers
/// exploding the crawl.
fn links(body: &str) -> Vec<String> {
    let re = regex::Regex::new(r##"(?:href|action)="(/[^"#]*)""##).unwrap_or_else(|e| panic!("{e}"));
    re.captures_iter(body).filter_map(|c| c.get(1)).map(|m| m.as_str().replace("&amp;", "&")).collect()
}

db_test!(no_page_puts_the_csrf_token_in_a_url, |app| {
    // Something on every list, so detail pages (and their forms) are rendered too.
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    crate::pyc::accepted_momo_request(&app, &sale).await;
    crate::support::ingest_corpus(&app, "c01");
    let mut multipart_forms = 0;
    for role in Role::ALL {
        let email = format!("crawl-{}@ipos.vn", role.code());
        app.create_user(&email, &[role]);
        let b = app.login(&email).await;
        let mut seen = std::collections::BTreeSet::new();
        let mut queue = vec!["/".to_string()];
        while let Some(path) = queue.pop() {
            let key = path.split('?').next().unwrap_or("").to_string();
            // One visit per page (not per filter or page number), a bounded crawl.
            if !seen.insert(key.clone()) || seen.len() > 200 {
                continue;
            }
            if key == "/logout"
                || key.starts_with("/static")
                || key.ends_with("/raw")
                || key.contains("xlsx")
                || key.contains("export")
            {
                continue;
            }
            let page = b.get(&path).await;
            if page.status != 200 {
                continue;
            }
            assert_eq!(token_in_url(&page.body), None, "{role:?} {path}: the CSRF token in a URL");
            multipart_forms += page.body.matches("multipart/form-data").count();
            queue.extend(links(&page.body));
        }
    }
    // The upload pages were among them (mail upload, reconciliation).
    assert!(multipart_forms >= 2, "the crawl reached the upload forms ({multipart_forms})");
});

#[test]
fn no_template_puts_the_csrf_token_in_a_url() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{e}")).flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                assert_eq!(token_in_url(&text), None, "{}", p.display());
            }
        }
    }
}

// A query string the page never makes (a field twice, a page that is not a number):
// refused in Vietnamese, naming the field where it can, with none of serde's English.
db_test!(forged_query_strings_are_refused_in_vietnamese, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let twice = sale.get("/requests?state=received&state=deploying").await;
    assert_eq!(twice.status, 422);
    assert!(twice.body.contains("Tham số không hợp lệ: “state” có nhiều giá trị."), "{}", twice.body);
    let not_a_number = sale.get("/requests?page=abc").await;
    assert_eq!(not_a_number.status, 422);
    assert!(not_a_number.body.contains("Tham số không hợp lệ: một giá trị không đúng dạng."), "{}", not_a_number.body);
    for english in ["duplicate", "invalid", "deserialize"] {
        assert!(!twice.body.contains(english) && !not_a_number.body.contains(english), "{english}");
    }
});
