//! Inbound mail: the corpus lands in the right partner, kind and thread on both
//! databases, through every ingest path, and nothing is lost or processed twice.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use hubgate::accounts::Role;
use hubgate::db::schema::{mail_attachments, mail_blobs, mail_messages};
use hubgate::mail::inbound::{models, service};

/// An inbox page as a person reads it: the count line above the table (not the "N thư
/// chưa xử lý được" banner every inbox page shows) and the mails its rows link to.
fn listed(page: &crate::support::Page) -> (usize, BTreeSet<i64>) {
    crate::support::listed(&page.body, "thư", "/mail/")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
                std::fs::read(&p).unwrap_or_default(),
            )
        })
        .collect()
}

/// (file, status, partner, kind, thread label): files with one label share a thread.
type Expectation = (&'static str, &'static str, Option<&'static str>, Option<&'static str>, &'static str);
const EXPECTED: &[Expectation] = &[
    ("a01-momo-request-outlook.eml", "stored", Some("MOMO"), Some("connection_request"), "A"),
    ("a02-merchant-confirm-gmail.eml", "stored", Some("MOMO"), Some("merchant_confirmation"), "A"),
    ("a03-momo-leader-approve.eml", "stored", Some("MOMO"), Some("leader_confirmation"), "A"),
    ("a04-ipos-reply.eml", "stored", Some("MOMO"), Some("other_reply"), "A"),
    ("b01-vnpay-request-windows1258.eml", "stored", Some("VNPAY"), Some("connection_request"), "B"),
    ("b02-vnpay-forwards-merchant-gmail.eml", "stored", Some("VNPAY"), Some("merchant_confirmation"), "B"),
    ("c01-giftpop-request-apple.eml", "stored", Some("GIFTPOP"), Some("connection_request"), "C"),
    ("c02-giftpop-fw-attached-rfc822.eml", "stored", Some("GIFTPOP"), Some("merchant_confirmation"), "C"),
    ("d01-zalopay-request-no-diacritics.eml", "stored", Some("ZALOPAY"), Some("connection_request"), "D"),
    ("d02-merchant-webmail-reply.eml", "stored", Some("ZALOPAY"), Some("merchant_confirmation"), "D"),
    ("e01-newsletter-unknown.eml", "stored", None, Some("unknown"), "E"),
    ("f01-garbage.eml", "unreadable", None, None, "-"),
    ("f02-truncated-multipart.eml", "stored", Some("MOMO"), Some("connection_request"), "F"),
    ("g01-duplicate-of-a01.eml", "duplicate", Some("MOMO"), Some("connection_request"), "A"),
];

fn ingest_all(app: &crate::support::TestApp) -> Vec<service::IngestReport> {
    let cfg = app.state.config.mail.clone();
    app.with_conn(|c| {
        corpus()
            .iter()
            .map(|(name, raw)| {
                service::ingest(c, &cfg, raw, "test", Some(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
            })
            .collect()
    })
}

fn check_expected(reports: &[service::IngestReport]) {
    assert_eq!(reports.len(), EXPECTED.len(), "corpus and expectations differ in size");
    let mut threads: HashMap<&str, i64> = HashMap::new();
    for (r, (file, status, partner, kind, label)) in reports.iter().zip(EXPECTED) {
        assert_eq!(r.file.as_deref(), Some(*file));
        assert_eq!(r.status, *status, "{file}: {:?}", r.error);
        assert_eq!(r.partner.as_deref(), *partner, "{file}: partner");
        assert_eq!(r.kind.as_deref(), *kind, "{file}: kind");
        if let Some(t) = r.thread_id {
            let first = *threads.entry(label).or_insert(t);
            assert_eq!(first, t, "{file} should be in thread {label}");
        }
    }
    let distinct: std::collections::HashSet<_> = threads.values().collect();
    assert_eq!(distinct.len(), threads.len(), "different labels must be different threads");
}

db_test!(corpus_lands_in_the_right_partner_kind_and_thread, |app| {
    let reports = ingest_all(&app);
    check_expected(&reports);

    // Decoding, sanitising, suggestions, forwarded senders and attachments.
    let by_file = |f: &str| reports.iter().find(|r| r.file.as_deref() == Some(f)).and_then(|r| r.id).unwrap_or(-1);
    app.with_conn(|c| {
        let a01 = models::message(c, by_file("a01-momo-request-outlook.eml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a01.subject, "[MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc");
        assert_eq!(a01.from_name, "Đối tác MoMo");
        let html = a01.html_body.clone().unwrap_or_default();
        assert!(html.contains("mở cổng kết nối HUB"));
        assert!(!html.contains("<script") && !html.contains("onerror"), "partner HTML is sanitised: {html}");
        let s: hubgate::mail::inbound::classify::Suggestions =
            serde_json::from_str(&a01.suggestions).unwrap_or_default();
        assert_eq!(s.merchant.as_deref(), Some("Phở Thìn Lò Đúc"));
        assert_eq!(s.address.as_deref(), Some("13 Lò Đúc, Hai Bà Trưng, Hà Nội"));
        assert_eq!(s.contact.as_deref(), Some("Chị Nguyễn Thị Lan"));
        assert_eq!(s.phones, vec!["0912345678"]);

        let b01 = models::message(c, by_file("b01-vnpay-request-windows1258.eml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b01.subject, "Đề nghị mở cổng kết nối cho Bún Chả Hương Liên", "windows-1258 subject");
        assert!(b01.text_body.contains("Địa chỉ: 24 Lê Văn Hưu"), "windows-1258 body: {}", b01.text_body);
        let b02 =
            models::message(c, by_file("b02-vnpay-forwards-merchant-gmail.eml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b02.forwarded_from.as_deref(), Some("minh@huonglien.vn"));
        assert_eq!(b02.forwarded_name.as_deref(), Some("Trần Minh"));
        let c02 = models::message(c, by_file("c02-giftpop-fw-attached-rfc822.eml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c02.forwarded_from.as_deref(), Some("quanly@thecoffeehouse.vn"));

        let names: Vec<String> = mail_attachments::table
            .select(mail_attachments::file_name)
            .order(mail_attachments::id)
            .load(c)
            .unwrap_or_default();
        assert!(names.contains(&"giay-phep.png".to_string()), "{names:?}");
        assert!(names.contains(&"danh-sách-điểm.csv".to_string()), "{names:?}");
        assert!(names.contains(&"xac-nhan.eml".to_string()), "{names:?}");

        // Every input is kept raw, the garbage and the duplicate included.
        let blobs: i64 = mail_blobs::table.count().get_result(c).unwrap_or(0);
        assert_eq!(blobs, EXPECTED.len() as i64);
        let unreadable: Vec<(String, Option<String>)> = mail_blobs::table
            .filter(mail_blobs::status.eq("unreadable"))
            .select((mail_blobs::status, mail_blobs::error))
            .load(c)
            .unwrap_or_default();
        assert_eq!(unreadable.len(), 1);
        assert!(unreadable[0].1.as_deref().unwrap_or("").contains("không phải là một thư"));
    });

    // Importing everything again stores nothing new.
    let again = ingest_all(&app);
    assert!(again.iter().all(|r| r.status == "duplicate"), "{:?}", again.iter().map(|r| &r.status).collect::<Vec<_>>());
    let messages: i64 = app.with_conn(|c| mail_messages::table.count().get_result(c).unwrap_or(0));
    assert_eq!(messages, 12);
});

db_test!(sales_work_the_inbox_in_the_browser, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let b = app.login("sale@ipos.vn").await;
    let upload = b.get("/mail/upload").await;
    assert_eq!(upload.status, 200);
    let token = upload.csrf().unwrap_or_default();

    // Several files in one upload, each with its own result.
    let resp = b
        .upload("/mail/upload", |mut form| {
            for (name, raw) in corpus().into_iter().filter(|(n, _)| n.starts_with('a') || n.starts_with('f')) {
                form = form.part("files", reqwest::multipart::Part::bytes(raw).file_name(name));
            }
            form
        })
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("Đã lưu"));
    assert!(resp.body.contains("Không đọc được"));
    let forged = b.multipart("/mail/upload", reqwest::multipart::Form::new().text("_csrf", "gia").text("x", "y")).await;
    assert_eq!(forged.status, 403);
    // The session's real token, but in the URL as the old form sent it: refused.
    let in_url = reqwest::multipart::Form::new()
        .part("files", reqwest::multipart::Part::bytes(b"From: a@b.vn\r\n\r\nx".to_vec()).file_name("x.eml"));
    let in_url = b.multipart(&format!("/mail/upload?_csrf={token}"), in_url).await;
    assert_eq!(in_url.status, 403);

    // Another partner's opening mail: the partner filter must leave it out.
    let vnpay = crate::support::ingest_corpus(&app, "b01");
    let mail = |message_id: &str| -> i64 {
        app.with_conn(|c| {
            mail_messages::table
                .filter(mail_messages::message_id.eq(message_id))
                .select(mail_messages::id)
                .first(c)
                .unwrap_or(-1)
        })
    };
    let (id, merchant_ok, leader_ok) =
        (mail("A01.outlook@momo.vn"), mail("CAG-a02@mail.gmail.com"), mail("a03-leader@momo.vn"));
    let inbox = b.get("/mail").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.body.contains("Mở cổng kết nối HUB - Phở Thìn Lò Đúc"));
    assert!(inbox.body.contains("Xác nhận của leader đối tác"));
    assert!(inbox.body.contains("1 thư chưa xử lý được"));
    let everything = listed(&inbox);
    assert!([id, merchant_ok, leader_ok, vnpay].iter().all(|m| everything.1.contains(m)), "{everything:?}");
    // The filters against what the rows hold: MoMo's opening mails, not VNPAY's nor the confirmations.
    let momo_requests = listed(&b.get("/mail?partner=MOMO&kind=connection_request").await);
    let momo = crate::support::partner_id(&app, "MOMO");
    let expected: BTreeSet<i64> = app.with_conn(|c| {
        mail_messages::table
            .filter(mail_messages::partner_id.eq(momo))
            .filter(mail_messages::kind.eq("connection_request"))
            .select(mail_messages::id)
            .load(c)
            .unwrap_or_default()
            .into_iter()
            .collect()
    });
    assert!(expected.contains(&id), "{expected:?}");
    assert_eq!(momo_requests.1, expected);
    assert_eq!(momo_requests.0, expected.len(), "the count line counts the rows");
    assert!(!momo_requests.1.contains(&vnpay) && !momo_requests.1.contains(&merchant_ok));
    // The merchant's confirmation is the one mail from phothin.vn.
    assert_eq!(listed(&b.get("/mail?q=phothin").await), (1, BTreeSet::from([merchant_ok])));
    let view = b.get(&format!("/mail/{id}")).await;
    assert_eq!(view.status, 200);
    assert!(view.body.contains("Cuộc hội thoại (4 thư)"), "the whole thread is shown");
    assert!(view.body.contains("Phở Thìn Lò Đúc"));
    assert!(view.body.contains("0912345678"));
    assert!(!view.body.contains("<script>alert"), "never raw partner HTML");

    let no_reason = b.post(&format!("/mail/{id}/not-relevant"), &[("reason", " ")]).await;
    assert_eq!(no_reason.status, 303);
    assert!(b.get(&format!("/mail/{id}")).await.body.contains("Vui lòng ghi lý do"));
    assert_eq!(b.post(&format!("/mail/{id}/not-relevant"), &[("reason", "Thư thử nghiệm")]).await.status, 303);
    let to_do = listed(&b.get("/mail").await);
    assert_eq!(to_do.0, everything.0 - 1, "it left the to-do list");
    assert!(!to_do.1.contains(&id) && to_do.1.contains(&merchant_ok), "{to_do:?}");
    assert_eq!(listed(&b.get("/mail?status=not_relevant").await), (1, BTreeSet::from([id])));
    assert_eq!(b.post(&format!("/mail/{id}/reclassify"), &[]).await.status, 303);
    let audited: Vec<String> = app.with_conn(|c| {
        use hubgate::db::schema::audit_log;
        audit_log::table
            .filter(audit_log::entity_type.eq("mail_message"))
            .filter(audit_log::entity_id.eq(id.to_string()))
            .select(audit_log::action)
            .order(audit_log::id)
            .load(c)
            .unwrap_or_default()
    });
    assert_eq!(audited, ["not_relevant", "reclassify"]);

    // The garbage file is kept and downloadable as it came.
    let unreadable = b.get("/mail/unreadable").await;
    assert!(unreadable.body.contains("f01-garbage.eml"));
    let blob: i64 = app.with_conn(|c| {
        mail_blobs::table.filter(mail_blobs::status.eq("unreadable")).select(mail_blobs::id).first(c).unwrap_or(-1)
    });
    let (status, _, download) = b.fetch(&format!("/mail/blobs/{blob}/raw")).await;
    assert_eq!(status, 200);
    let garbage = corpus().into_iter().find(|(n, _)| n.starts_with("f01")).map(|x| x.1).unwrap_or_default();
    assert!(!garbage.is_empty());
    assert_eq!(download, garbage, "the file comes back byte for byte");

    // Rules are admin data: a new keyword changes the classification.
    let admin = app.login("admin@ipos.vn").await;
    let e01: i64 = app.with_conn(|c| {
        let cfg = app.state.config.mail.clone();
        let raw = corpus().into_iter().find(|(n, _)| n.starts_with("e01")).map(|x| x.1).unwrap_or_default();
        service::ingest(c, &cfg, &raw, "test", None).ok().and_then(|r| r.id).unwrap_or(-1)
    });
    assert_eq!(admin.post("/admin/mail-rules", &[("kind", "request"), ("pattern", "Khuyến mãi")]).await.status, 303);
    assert!(admin.get("/admin/mail-rules").await.body.contains("khuyen mai"), "stored folded");
    assert_eq!(b.post(&format!("/mail/{e01}/reclassify"), &[]).await.status, 303);
    assert!(b.get(&format!("/mail/{e01}")).await.body.contains("Yêu cầu mở cổng"));
});

db_test!(http_endpoint_needs_the_token, |app| {
    let url = format!("{}/inbound/mail", app.base);
    let raw = corpus().into_iter().find(|(n, _)| n.starts_with("b01")).map(|x| x.1).unwrap_or_default();
    let client = reqwest::Client::new();
    // No token configured: the endpoint refuses everything.
    let r = client.post(&url).bearer_auth("").body(raw.clone()).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error"], "unauthorized");
});

#[actix_web::test]
async fn http_endpoint_stores_with_the_token() {
    let app = crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| {
        c.mail.inbound_token = "bi-mat-mta".into();
    })
    .await
    .unwrap_or_else(|| panic!("sqlite"));
    let url = format!("{}/inbound/mail", app.base);
    let raw = corpus().into_iter().find(|(n, _)| n.starts_with("b01")).map(|x| x.1).unwrap_or_default();
    let client = reqwest::Client::new();
    let wrong = client.post(&url).bearer_auth("sai").body(raw.clone()).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status(), 401);
    let ok =
        client.post(&url).bearer_auth("bi-mat-mta").body(raw.clone()).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 202);
    let body: serde_json::Value = ok.json().await.unwrap_or_default();
    assert_eq!(body["data"]["status"], "stored");
    assert_eq!(body["data"]["partner"], "VNPAY");
    let again = client.post(&url).bearer_auth("bi-mat-mta").body(raw).send().await.unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = again.json().await.unwrap_or_default();
    assert_eq!(body["data"]["status"], "duplicate");
}

#[test]
fn cli_imports_folders_and_reports_json() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
            .args(["mail", "import", "--format", "json"])
            .arg(corpus_dir())
            .env("DATABASE_URL", format!("sqlite://{}/hub.db", dir.path().display()))
            .env("HUBGATE_DATA_DIR", dir.path())
            .env("HUBGATE_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = run();
    assert!(!first.status.success(), "the garbage file makes the import report a failure");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), EXPECTED.len());
    for (line, (file, status, partner, kind, _)) in lines.iter().zip(EXPECTED) {
        assert!(line["file"].as_str().unwrap_or("").ends_with(file));
        assert_eq!(line["status"], *status, "{file}");
        assert_eq!(line["partner"].as_str(), *partner, "{file}");
        assert_eq!(line["kind"].as_str(), *kind, "{file}");
        for key in ["message_id", "from", "subject", "thread_id", "request_id", "error"] {
            assert!(line.get(key).is_some(), "{key} missing");
        }
    }
    let second = run();
    let statuses: Vec<String> = String::from_utf8_lossy(&second.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(statuses.iter().all(|s| s == "duplicate"), "{statuses:?}");
}

db_test!(watched_maildir_moves_new_to_cur, |app| {
    let maildir = app.data_dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    for (name, raw) in corpus().into_iter().filter(|(n, _)| n.starts_with('d')) {
        std::fs::write(maildir.join("new").join(format!("1700000000.{name}")), raw).unwrap_or_else(|e| panic!("{e}"));
    }
    let cfg = app.state.config.mail.clone();
    let reports =
        app.with_conn(|c| hubgate::mail::inbound::maildir::scan(c, &cfg, &maildir)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.status == "stored"));
    assert_eq!(reports[0].thread_id, reports[1].thread_id);
    assert_eq!(std::fs::read_dir(maildir.join("new")).map(|d| d.count()).unwrap_or(9), 0);
    assert_eq!(std::fs::read_dir(maildir.join("cur")).map(|d| d.count()).unwrap_or(0), 2);
    let again = app.with_conn(|c| hubgate::mail::inbound::maildir::scan(c, &cfg, &maildir)).unwrap_or_default();
    assert!(again.is_empty());
});

#[actix_web::test]
async fn size_limits_keep_the_raw_mail() {
    let app = crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| {
        c.mail.max_message_bytes = 1300;
        c.mail.max_attachment_bytes = 10;
    })
    .await
    .unwrap_or_else(|| panic!("sqlite"));
    let cfg = app.state.config.mail.clone();
    let files = corpus();
    let get = |p: &str| files.iter().find(|(n, _)| n.starts_with(p)).map(|x| x.1.clone()).unwrap_or_default();
    app.with_conn(|c| {
        let big = service::ingest(c, &cfg, &get("a01"), "test", None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(big.status, "too_large");
        assert!(big.error.unwrap_or_default().contains("vượt giới hạn"));
        let with_attachment = service::ingest(c, &cfg, &get("a02"), "test", None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(with_attachment.status, "stored");
        let omitted: Vec<Option<String>> =
            mail_attachments::table.select(mail_attachments::omitted_reason).load(c).unwrap_or_default();
        assert_eq!(omitted.len(), 1, "the attachment is listed");
        assert!(
            omitted[0].as_deref().unwrap_or("").contains("vượt giới hạn"),
            "with the reason its content is not stored"
        );
        let kept: i64 = mail_blobs::table.filter(mail_blobs::status.eq("too_large")).count().get_result(c).unwrap_or(0);
        assert_eq!(kept, 1);
    });
}

mod the_same_mail_delivered_at_once_is_a_duplicate_not_an_error {
    use super::*;

    // Two MX hosts, or an MTA retrying, hand over the same message at the same moment.
    // One delivery stores it; every other one is told "duplicate" with a 202, never a
    // 503 that makes the sender retry a mail that was kept.
    async fn run(backend: hubgate::db::Backend) {
        let Some(app) = crate::support::TestApp::start_with(backend, |c| {
            c.mail.inbound_token = "bi-mat-mta".into();
        })
        .await
        else {
            return;
        };
        let url = format!("{}/inbound/mail", app.base);
        let client = reqwest::Client::new();
        let mails = corpus();
        let mut statuses: Vec<(String, u16, String)> = Vec::new();
        for (name, raw) in &mails {
            let sends = (0..6).map(|_| {
                let (client, url, raw) = (client.clone(), url.clone(), raw.clone());
                async move {
                    let r = client.post(&url).bearer_auth("bi-mat-mta").body(raw).send().await;
                    let r = r.unwrap_or_else(|e| panic!("{e}"));
                    let code = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    (code, body["data"]["status"].as_str().unwrap_or("").to_string())
                }
            });
            for (code, status) in futures_util::future::join_all(sends).await {
                statuses.push((name.clone(), code, status));
            }
        }
        for (name, code, _) in &statuses {
            assert_eq!(*code, 202, "{name}: {statuses:?}");
        }
        for (name, _) in &mails {
            let firsts = statuses.iter().filter(|(n, _, s)| n == name && s != "duplicate").count();
            // g01 repeats a01's Message-ID in other bytes: a duplicate every time.
            let expected = usize::from(!name.contains("duplicate-of"));
            assert_eq!(firsts, expected, "{name} stored exactly once: {statuses:?}");
        }
        let blobs: i64 = app.with_conn(|c| {
            hubgate::db::schema::mail_blobs::table.count().get_result(c).unwrap_or_else(|e| panic!("{e}"))
        });
        assert_eq!(blobs, mails.len() as i64);
    }

    crate::on_both_backends!(run);
}

db_test!(remote_images_in_partner_mail_wait_for_the_reader, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let raw = "From: MoMo <hotro@momo.vn>\r\nTo: sale@ipos.vn\r\nSubject: Ket noi cong\r\n\
               Message-ID: <pixel-1@momo.vn>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\n\
               Content-Type: text/html; charset=utf-8\r\n\r\n\
               <p>Xin chao</p><img src=\"https://theo-doi.example/mo.gif?nguoi=sale\" width=1 height=1>\r\n";
    let id = app.with_conn(|c| {
        let cfg = app.state.config.mail.clone();
        service::ingest(c, &cfg, raw.as_bytes(), "test", None).ok().and_then(|r| r.id).unwrap_or(-1)
    });
    assert!(id > 0);
    let b = app.login("sale@ipos.vn").await;
    let page = b.get(&format!("/mail/{id}")).await;
    assert!(page.body.contains("Xin chao"));
    assert!(!page.body.contains("theo-doi.example"), "the pixel is not on the page");
    assert!(page.body.contains("Đã chặn 1 hình ảnh"));
    assert!(page.body.contains(&format!("/mail/{id}?images=1")), "Hiện hình ảnh");
    let csp = b.header(&format!("/mail/{id}"), "content-security-policy").await.unwrap_or_default();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    let shown = b.get(&format!("/mail/{id}?images=1")).await;
    assert!(shown.body.contains("https://theo-doi.example/mo.gif"), "shown once asked");
    assert!(!shown.body.contains("Đã chặn"));
    let csp = b.header(&format!("/mail/{id}?images=1"), "content-security-policy").await.unwrap_or_default();
    assert!(csp.contains("img-src 'self' data: https: http:"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "only the image rule is relaxed: {csp}");
});

use crate::desk::eml as plain_mail;

fn ingest_one(app: &crate::support::TestApp, raw: &[u8]) -> service::IngestReport {
    let cfg = app.state.config.mail.clone();
    app.with_conn(|c| service::ingest(c, &cfg, raw, "test", None)).unwrap_or_else(|e| panic!("{e:?}"))
}

fn blob_status(app: &crate::support::TestApp, id: i64) -> String {
    app.with_conn(|c| mail_blobs::table.find(id).select(mail_blobs::status).first(c)).unwrap_or_default()
}

mod unreadable_mail_is_retried_after_a_fix {
    use super::*;

    async fn run(backend: hubgate::db::Backend) {
        // A node whose limit is 2 kB: a longer mail is kept raw and not processed.
        let Some(app) = crate::support::TestApp::start_with(backend, |c| c.mail.max_message_bytes = 2_000).await else {
            return;
        };
        app.create_user("sale@ipos.vn", &[Role::Sale]);
        let long =
            plain_mail("hub@vnpay.vn", "Danh sách 40 điểm bán", &"Điểm bán số 1, 2 Lê Lợi. ".repeat(100), "long-1");
        let too_large = ingest_one(&app, &long);
        assert_eq!(too_large.status, "too_large");
        let garbage = ingest_one(&app, b"\x00\x01 khong phai thu \xff\xfe");
        assert_eq!(garbage.status, "unreadable");
        // A crash between keeping the bytes and reading them leaves a `received` row.
        let crashed = plain_mail("hotro@momo.vn", "Mở cổng cho Phở Thìn", "Nhờ anh chị mở cổng.", "crash-1");
        let sha = hex_sha256(&crashed);
        let left = app
            .with_conn(|c| {
                hubgate::mail::inbound::models::insert_blob(c, &sha, &crashed, "imap", None, hubgate::db::now())
            })
            .ok()
            .flatten()
            .unwrap_or(-1);
        let b = app.login("sale@ipos.vn").await;
        let list = b.get("/mail/unreadable").await;
        assert_eq!(crate::support::linked_ids(&list.body, "/mail/blobs/").len(), 0, "raw links end in /raw");
        for blob in [too_large.blob_id, garbage.blob_id, left] {
            assert!(list.body.contains(&format!("action=\"/mail/blobs/{blob}/retry\"")), "{blob}: {}", list.body);
        }
        assert!(b.get("/mail").await.body.contains("3 thư chưa xử lý được"));
        // Every kept original downloads as it came.
        for (blob, raw) in [
            (too_large.blob_id, &long),
            (garbage.blob_id, &b"\x00\x01 khong phai thu \xff\xfe".to_vec()),
            (left, &crashed),
        ] {
            assert_eq!(&b.bytes(&format!("/mail/blobs/{blob}/raw")).await, raw, "blob {blob}");
        }

        // The crashed one goes through on retry and opens as a mail.
        let r = b.post(&format!("/mail/blobs/{left}/retry"), &[]).await;
        let stored: i64 = app
            .with_conn(|c| {
                mail_messages::table.filter(mail_messages::blob_id.eq(left)).select(mail_messages::id).first(c)
            })
            .unwrap_or(-1);
        assert_eq!((r.status, r.location.as_deref()), (303, Some(format!("/mail/{stored}").as_str())));
        let page = b.get(&format!("/mail/{stored}")).await;
        assert_eq!(crate::support::flashes(&page, "success"), ["Đã xử lý lại thư thành công."]);
        assert!(page.body.contains("Mở cổng cho Phở Thìn") && page.body.contains("MOMO"));
        assert_eq!(blob_status(&app, left), "stored");
        // Garbage stays garbage, with the reason; a stored one is not processed twice.
        let r = b.post(&format!("/mail/blobs/{}/retry", garbage.blob_id), &[]).await;
        assert_eq!(r.location.as_deref(), Some("/mail/unreadable"));
        let errors = crate::support::flashes(&b.get("/mail/unreadable").await, "error");
        assert!(errors.len() == 1 && errors[0].starts_with("Vẫn chưa xử lý được: "), "{errors:?}");
        b.post(&format!("/mail/blobs/{left}/retry"), &[]).await;
        assert_eq!(crate::support::flashes(&b.get("/mail/unreadable").await, "error"), ["Thư này đã được xử lý."]);
        let too_big_again = b.post(&format!("/mail/blobs/{}/retry", too_large.blob_id), &[]).await;
        assert_eq!(too_big_again.location.as_deref(), Some("/mail/unreadable"));
        assert_eq!(blob_status(&app, too_large.blob_id), "too_large");

        // The admin raises the limit (here: the node restarted with 10 MB): now it goes through.
        let base = app.serve_again(|c| c.mail.max_message_bytes = 10 * 1024 * 1024);
        let after = crate::support::Browser::new(&base);
        assert_eq!(after.login("sale@ipos.vn", crate::support::PASSWORD).await.status, 303);
        let r = after.post(&format!("/mail/blobs/{}/retry", too_large.blob_id), &[]).await;
        assert_eq!(r.status, 303);
        assert!(r.location.as_deref().is_some_and(|l| l.starts_with("/mail/") && l != "/mail/unreadable"), "{r:?}");
        assert_eq!(blob_status(&app, too_large.blob_id), "stored");
        let list = after.get("/mail/unreadable").await;
        assert!(list.body.contains(&format!("/mail/blobs/{}/retry", garbage.blob_id)));
        assert!(!list.body.contains(&format!("/mail/blobs/{}/retry", too_large.blob_id)), "no longer a problem");
        assert!(!list.body.contains(&format!("/mail/blobs/{left}/retry")));
        let retries: Vec<String> = [left, garbage.blob_id, too_large.blob_id]
            .iter()
            .flat_map(|id| crate::support::audit_trail(&app, "mail_blob", *id))
            .map(|a| a.0)
            .collect();
        assert_eq!(retries, ["retry", "retry", "retry", "retry"], "each attempt that ran is recorded");
    }

    fn hex_sha256(raw: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(raw))
    }

    crate::on_both_backends!(run);
}

db_test!(a_mail_marked_not_relevant_is_reopened, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let id = ingest_one(&app, &plain_mail("hub@vnpay.vn", "Thư chúc mừng năm mới", "Chúc mừng năm mới.", "tet-1"))
        .id
        .unwrap_or(-1);
    let kept =
        ingest_one(&app, &plain_mail("hub@vnpay.vn", "Mở cổng Bún Chả", "Nhờ mở cổng.", "bun-1")).id.unwrap_or(-1);
    let b = app.login("sale@ipos.vn").await;
    assert_eq!(b.post(&format!("/mail/{id}/not-relevant"), &[("reason", "Thư chúc Tết")]).await.status, 303);
    assert_eq!(crate::support::linked_ids(&b.get("/mail").await.body, "/mail/"), [kept]);
    let page = b.get(&format!("/mail/{id}")).await;
    assert!(
        page.body.contains(&format!("action=\"/mail/{id}/reopen\"")) && page.body.contains("Thư chúc Tết"),
        "{}",
        page.body
    );

    let r = b.post(&format!("/mail/{id}/reopen"), &[]).await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some(format!("/mail/{id}").as_str())));
    let page = b.get(&format!("/mail/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "success"), ["Đã đưa thư trở lại hộp thư."]);
    assert!(!page.body.contains(&format!("action=\"/mail/{id}/reopen\"")));
    assert!(page.body.contains(&format!("action=\"/mail/{id}/not-relevant\"")), "it can be set aside again");
    let mut inbox = crate::support::linked_ids(&b.get("/mail").await.body, "/mail/");
    inbox.sort();
    assert_eq!(inbox, [id, kept], "back among the mail to do");
    assert!(crate::support::linked_ids(&b.get("/mail?status=not_relevant").await.body, "/mail/").is_empty());
    let (status, reason): (String, Option<String>) = app
        .with_conn(|c| {
            mail_messages::table.find(id).select((mail_messages::status, mail_messages::status_reason)).first(c)
        })
        .unwrap_or_default();
    assert_eq!((status.as_str(), reason), ("new", None));
    let audit = crate::support::audit_trail(&app, "mail_message", id);
    assert_eq!(audit.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["not_relevant", "reopen"]);
    assert!(audit[1].1.contains("not_relevant") && audit[1].2.contains("\"new\""));
    assert_eq!(b.post("/mail/987654/reopen", &[]).await.status, 404);
});

db_test!(attachments_download_as_they_came, |app| {
    use hubgate::db::schema::mail_attachments;
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let csv = "Tên điểm,Địa chỉ\r\nPhở Thìn,13 Lò Đúc\r\n".as_bytes().to_vec();
    let png: Vec<u8> = (0u8..=255).chain([0x89, b'P', b'N', b'G']).collect();
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let raw = format!(
        "From: hub@vnpay.vn\r\nTo: hub@ipos.vn\r\nSubject: Danh sach diem\r\nMessage-ID: <files-dl@test>\r\n\
         Date: Mon, 2 Nov 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGui anh danh sach.\r\n\
         --b\r\nContent-Type: text/csv; name*=utf-8''danh-s%C3%A1ch-%C4%91i%E1%BB%83m.csv\r\nContent-Disposition: attachment; filename*=utf-8''danh-s%C3%A1ch-%C4%91i%E1%BB%83m.csv\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --b\r\nContent-Type: application/octet-stream; name=\"du-lieu.bin\"\r\nContent-Disposition: attachment; filename=\"du-lieu.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(&csv),
        b64(&png)
    );
    let mail = ingest_one(&app, raw.as_bytes()).id.unwrap_or(-1);
    let other = ingest_one(&app, &plain_mail("hub@vnpay.vn", "Khác", "x", "other-dl")).id.unwrap_or(-1);
    let files: Vec<(String, i64)> = app
        .with_conn(|c| {
            mail_attachments::table
                .filter(mail_attachments::message_id.eq(mail))
                .order(mail_attachments::id)
                .select((mail_attachments::file_name, mail_attachments::id))
                .load(c)
        })
        .unwrap_or_default();
    assert_eq!(files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["danh-sách-điểm.csv", "du-lieu.bin"]);
    let b = app.login("sale@ipos.vn").await;
    let page = b.get(&format!("/mail/{mail}")).await;
    for (name, id) in &files {
        assert!(page.body.contains(&format!("href=\"/mail/{mail}/attachments/{id}\"")), "{name} is offered");
    }
    for ((name, id), bytes) in files.iter().zip([&csv, &png]) {
        let (status, headers, body) = b.fetch(&format!("/mail/{mail}/attachments/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(&body, bytes, "{name} byte for byte");
        // The header is ASCII (a client reads it as text) and names the file as it was named.
        let disposition = headers
            .get("content-disposition")
            .map(|v| v.to_str().unwrap_or_else(|_| panic!("{name}: a header of raw bytes {v:?}")))
            .unwrap_or_default();
        assert!(disposition.starts_with("attachment"), "{disposition}");
        let named = match disposition.split_once("filename*=UTF-8''") {
            Some((_, encoded)) => urlencoding::decode(encoded.split(';').next().unwrap_or("")).map(|n| n.into_owned()),
            None => Ok(disposition.split("filename=\"").nth(1).and_then(|n| n.split('"').next()).unwrap_or("").into()),
        };
        assert_eq!(named.as_deref().ok(), Some(name.as_str()), "{disposition}");
    }
    // An attachment asked for under another mail is not found.
    assert_eq!(b.fetch(&format!("/mail/{other}/attachments/{}", files[0].1)).await.0, 404);
});

db_test!(mail_rules_are_switched_off_and_deleted, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await;
    let sale = app.login("sale@ipos.vn").await;
    let promo = ingest_one(
        &app,
        &plain_mail("hub@vnpay.vn", "Chương trình khuyến mãi tháng 11", "Ưu đãi cho merchant.", "km-1"),
    );
    let id = promo.id.unwrap_or(-1);
    let kind_of = || -> String {
        app.with_conn(|c| mail_messages::table.find(id).select(mail_messages::kind).first(c)).unwrap_or_default()
    };
    let original = kind_of();
    assert_ne!(original, "connection_request", "no rule yet");
    assert_eq!(admin.post("/admin/mail-rules", &[("kind", "request"), ("pattern", "Khuyến mãi")]).await.status, 303);
    assert_eq!(
        admin.post("/admin/mail-rules", &[("kind", "confirmation"), ("pattern", "đồng ý kết nối")]).await.status,
        303
    );
    let rule: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_rules;
            mail_rules::table.filter(mail_rules::pattern.eq("khuyen mai")).select(mail_rules::id).first(c)
        })
        .unwrap_or(-1);
    let reclassified = || async {
        assert_eq!(sale.post(&format!("/mail/{id}/reclassify"), &[]).await.status, 303);
        kind_of()
    };
    assert_eq!(reclassified().await, "connection_request");
    let row = |body: &str| -> Vec<String> {
        crate::support::table_rows(body).into_iter().find(|r| r[1] == "khuyen mai").unwrap_or_default()
    };

    // Switched off: shown as off, and classification no longer uses it.
    let r = admin.post(&format!("/admin/mail-rules/{rule}/toggle"), &[]).await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/admin/mail-rules")));
    let page = admin.get("/admin/mail-rules").await;
    assert_eq!(row(&page.body)[2], "Tắt", "{}", page.body);
    assert_eq!(row(&page.body)[3], "Bật Xóa", "the button now turns it on");
    assert_eq!(reclassified().await, original);
    // Back on, then deleted: gone from the page and from classification; the other rule stays.
    admin.post(&format!("/admin/mail-rules/{rule}/toggle"), &[]).await;
    assert_eq!(row(&admin.get("/admin/mail-rules").await.body)[2], "Đang dùng");
    assert_eq!(reclassified().await, "connection_request");
    let r = admin.post(&format!("/admin/mail-rules/{rule}/delete"), &[]).await;
    assert_eq!(r.status, 303);
    let page = admin.get("/admin/mail-rules").await;
    assert_eq!(crate::support::flashes(&page, "success"), ["Đã xóa quy tắc."]);
    assert!(row(&page.body).is_empty() && page.body.contains("dong y ket noi"), "{}", page.body);
    assert_eq!(reclassified().await, original);
    let actions: Vec<String> = crate::support::audit_trail(&app, "mail_rule", rule).into_iter().map(|a| a.0).collect();
    assert_eq!(actions, ["create", "disable", "enable", "delete"]);
    // Sales may not touch rules; a deleted rule is not found.
    assert_eq!(sale.post(&format!("/admin/mail-rules/{rule}/toggle"), &[]).await.status, 403);
    assert_eq!(admin.post(&format!("/admin/mail-rules/{rule}/delete"), &[]).await.status, 404);
});

db_test!(inbox_filters_and_pages, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    // A page and one more of VNPAY's, one MoMo, one from a stranger.
    let vnpay: Vec<i64> = (0..51)
        .map(|n| {
            ingest_one(
                &app,
                &plain_mail(
                    "hub@vnpay.vn",
                    &format!("Đề nghị mở cổng kết nối điểm {n:02}"),
                    "Nhờ mở cổng.",
                    &format!("vn-{n}"),
                ),
            )
            .id
            .unwrap_or(-1)
        })
        .collect();
    let momo =
        ingest_one(&app, &plain_mail("hotro@momo.vn", "Mở cổng cho Phở Thìn", "Nhờ mở cổng.", "mm-1")).id.unwrap_or(-1);
    let stranger = ingest_one(&app, &plain_mail("news@quangcao.example", "Bản tin", "Tin tức.", "st-1"));
    let other_kind = stranger.kind.clone().unwrap_or_default();
    let stranger = stranger.id.unwrap_or(-1);
    let kind_of = |id: i64| -> String {
        app.with_conn(|c| mail_messages::table.find(id).select(mail_messages::kind).first(c)).unwrap_or_default()
    };
    assert_eq!(kind_of(vnpay[0]), "connection_request");
    assert_ne!(other_kind, "connection_request");
    // One set aside; one taken by a request; two imported in January.
    sale.post(&format!("/mail/{}/not-relevant", vnpay[50]), &[("reason", "Trùng")]).await;
    let pid = crate::support::partner_id(&app, "VNPAY").to_string();
    let mid = vnpay[49].to_string();
    let r = sale
        .post(
            "/requests",
            &[
                ("partner_id", pid.as_str()),
                ("mail_id", mid.as_str()),
                ("merchant_name", "Điểm 49"),
                ("point_name", "Điểm 49"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    for (id, at) in [(vnpay[0], "2026-01-10 03:00:00"), (momo, "2026-01-31 17:30:00")] {
        let at = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S").unwrap_or_default();
        app.with_conn(|c| {
            diesel::update(mail_messages::table.find(id)).set(mail_messages::created_at.eq(at)).execute(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let sorted = |mut v: Vec<i64>| {
        v.sort();
        v
    };
    // Set aside, and taken by a request ("attached"): neither is left to do.
    let new_vnpay: Vec<i64> = vnpay[..49].to_vec();

    // The default view is what is left to do: 52 mails, two pages.
    let (ids, sizes) = crate::support::all_pages(&sale, "/mail", "/mail/").await;
    assert_eq!(sizes, [50, 1]);
    assert_eq!(sorted(ids), sorted(new_vnpay.iter().copied().chain([momo, stranger]).collect()));
    let first = sale.get("/mail?partner=VNPAY").await;
    assert!(first.body.contains("49 thư · trang 1/1"), "{}", first.body);
    let all = sale.get("/mail?status=all").await;
    assert!(all.body.contains("53 thư · trang 1/2"));
    assert_eq!(crate::support::pager_link(&all, "Trang sau ›").as_deref(), Some("/mail?page=2&status=all"));
    let (ids, _) = crate::support::all_pages(&sale, "/mail?status=all&partner=VNPAY", "/mail/").await;
    assert_eq!(sorted(ids), sorted(vnpay.clone()));
    // January, in Ho Chi Minh City time: 31 January 17:30 UTC is already 1 February there.
    for (query, expected) in [
        ("partner=MOMO".to_string(), vec![momo]),
        (format!("kind={other_kind}"), vec![stranger]),
        ("kind=connection_request&partner=MOMO".into(), vec![momo]),
        ("kind=connection_request&status=all&from=2026-01-01&to=2026-01-31".into(), vec![vnpay[0]]),
        ("status=all&from=2026-01-01&to=2026-01-31".into(), vec![vnpay[0]]),
        ("status=all&from=2026-02-01&to=2026-02-01".into(), vec![momo]),
        ("status=not_relevant".into(), vec![vnpay[50]]),
        ("status=attached".into(), vec![vnpay[49]]),
        ("status=all&q=diem%2049".into(), vec![vnpay[49]]),
        ("status=all&q=diem%2049&unassigned=1".into(), vec![]),
        ("status=all&q=diem%2048&unassigned=1".into(), vec![vnpay[48]]),
        (format!("partner=MOMO&kind={other_kind}"), vec![]),
    ] {
        let page = sale.get(&format!("/mail?{query}")).await;
        assert_eq!(sorted(crate::support::linked_ids(&page.body, "/mail/")), sorted(expected.clone()), "{query}");
    }
    let unassigned = sale.get("/mail?status=all&unassigned=1").await;
    assert!(unassigned.body.contains("52 thư"), "all but the one a request took: {}", unassigned.body);
});
