//! PYC: from an accepted MoMo request to the 0 đ invoice, with the B5 reply received by
//! a real SMTP server, keys sealed at rest, reveal permission and audit, and numbering.

use diesel::prelude::*;
use hubgate::accounts::Role;
use hubgate::db::schema::{audit_log, pyc_checklist, pycs, requests};

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R', 7, 7];

fn version(app: &crate::support::TestApp, id: i64) -> String {
    app.with_conn(|c| pycs::table.find(id).select(pycs::version).first::<i64>(c)).unwrap_or(-1).to_string()
}

fn request_state(app: &crate::support::TestApp, id: i64) -> String {
    app.with_conn(|c| requests::table.find(id).select(requests::state).first(c)).unwrap_or_default()
}

/// A complete PYC form for the MoMo request.
pub(crate) const MOMO_PYC: [(&str, &str); 11] = [
    ("customer_name", "Công ty Cổ phần Dịch vụ Di động Trực tuyến (M_Service)"),
    ("deployment_type", "Extradeploy – tiếp tục từ hợp đồng"),
    ("contract_code", "HD-MOMO-20261102"),
    ("signing_rep", "Công ty Cổ phần Dịch vụ Di động Trực tuyến (M_Service)"),
    ("product", "HUB → Mở cổng kết nối"),
    ("brand", "MOMO HUB"),
    ("point_applied", "MoMo - Điểm ảo"),
    ("location", "Phở Thìn - 13 Lò Đúc – 13 Lò Đúc, Hà Nội"),
    ("support_person", "Chị Lan"),
    ("support_phone", "0912345678"),
    ("notes", "Ghi chú mở cổng kết nối thanh toán (MOMO)"),
];

/// An accepted MoMo request opened from the corpus; returns its id.
pub(crate) async fn accepted_momo_request(app: &crate::support::TestApp, sale: &crate::support::Browser) -> i64 {
    let opening = crate::support::ingest_corpus(app, "a01");
    crate::support::ingest_corpus(app, "a02");
    crate::support::ingest_corpus(app, "a03");
    let pid: i64 = crate::support::partner_id(app, "MOMO");
    let (pid, mid) = (pid.to_string(), opening.to_string());
    let r = sale
        .post(
            "/requests",
            &[
                ("partner_id", pid.as_str()),
                ("mail_id", mid.as_str()),
                ("merchant_name", "Phở Thìn Lò Đúc"),
                ("point_name", "Phở Thìn - 13 Lò Đúc"),
                ("point_address", "13 Lò Đúc, Hà Nội"),
                ("point_contact", "Chị Lan"),
                ("point_phone", "0912345678"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let id: i64 =
        app.with_conn(|c| requests::table.select(requests::id).order(requests::id.desc()).first(c)).unwrap_or(-1);
    let v =
        app.with_conn(|c| requests::table.find(id).select(requests::version).first::<i64>(c)).unwrap_or(-1).to_string();
    let ok = sale
        .post(
            &format!("/requests/{id}/accept"),
            &[
                ("version", v.as_str()),
                ("to", "hub@momo.vn"),
                ("subject", "RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"),
                ("body", "Đồng ý mở cổng."),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    id
}

#[actix_web::test]
async fn from_accepted_request_to_invoice_sqlite() {
    full_path(hubgate::db::Backend::Sqlite).await;
}

#[actix_web::test]
async fn from_accepted_request_to_invoice_postgres() {
    if crate::support::pg_admin_url().is_none() {
        return;
    }
    full_path(hubgate::db::Backend::Postgres).await;
}

async fn full_path(backend: hubgate::db::Backend) {
    let (port, inbox, _server) = crate::smtp::start(0).await;
    let app = crate::support::TestApp::start_with(backend, |c| {
        c.outbound.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))
    })
    .await
    .unwrap_or_else(|| panic!("backend"));
    for (email, role) in [
        ("sale@ipos.vn", Role::Sale),
        ("leader@ipos.vn", Role::Leader),
        ("kythuat@ipos.vn", Role::Technician),
        ("ketoan@ipos.vn", Role::Accountant),
    ] {
        app.create_user(email, &[role]);
    }
    let sale = app.login("sale@ipos.vn").await;
    let leader = app.login("leader@ipos.vn").await;
    let tech = app.login("kythuat@ipos.vn").await;
    let accountant = app.login("ketoan@ipos.vn").await;
    let rid = accepted_momo_request(&app, &sale).await;

    // The PYC form is prefilled from the partner, the point and the opening mail's date.
    let form = sale.get(&format!("/requests/{rid}/pyc/new")).await;
    assert_eq!(form.status, 200);
    for expected in [
        "HD-MOMO-20261102",
        "Extradeploy",
        "HUB → Mở cổng kết nối",
        "MOMO HUB",
        "MoMo - Điểm ảo",
        "Phở Thìn - 13 Lò Đúc – 13 Lò Đúc, Hà Nội",
        "Chị Lan",
        "Key1:",
        "MoMo Merchant CMS",
    ] {
        assert!(form.body.contains(expected), "missing {expected}");
    }
    let created = sale.post(&format!("/requests/{rid}/pyc"), &MOMO_PYC).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id: i64 = app.with_conn(|c| pycs::table.select(pycs::id).first(c)).unwrap_or(-1);
    let number: String = app.with_conn(|c| pycs::table.find(id).select(pycs::number).first(c)).unwrap_or_default();
    // Numbered by the local year it was made in: the year read from its own row, so a
    // run across New Year's midnight checks the same thing.
    let made: chrono::NaiveDateTime =
        app.with_conn(|c| pycs::table.find(id).select(pycs::created_at).first(c)).unwrap_or_default();
    let year = chrono::Datelike::year(&hubgate::fmt::local_date(made));
    assert_eq!(number, format!("PYC-{year}-000001"));

    // B7 by a leader only, then B8; the request reaches B3.
    assert_eq!(sale.post(&format!("/pyc/{id}/review"), &[("version", version(&app, id).as_str())]).await.status, 403);
    assert_eq!(leader.post(&format!("/pyc/{id}/review"), &[("version", version(&app, id).as_str())]).await.status, 303);
    assert_eq!(sale.post(&format!("/pyc/{id}/create"), &[("version", version(&app, id).as_str())]).await.status, 303);
    assert_eq!(request_state(&app, rid), "ticket");

    // The technician cannot finish with anything missing.
    let v = version(&app, id);
    tech.post(&format!("/pyc/{id}/deployed"), &[("version", v.as_str())]).await;
    let page = tech.get(&format!("/pyc/{id}")).await;
    assert!(page.body.contains("Chưa thể hoàn tất") && page.body.contains("Thiếu Key1"), "{}", page.body);
    let items: Vec<(i64, bool)> = app
        .with_conn(|c| {
            pyc_checklist::table
                .filter(pyc_checklist::pyc_id.eq(id))
                .order(pyc_checklist::position)
                .select((pyc_checklist::id, pyc_checklist::required))
                .load(c)
        })
        .unwrap_or_default();
    assert_eq!(items.len(), 8, "the template's items became the checklist");
    for (item, required) in &items {
        if *required {
            assert_eq!(tech.post(&format!("/pyc/{id}/items/{item}"), &[("done", "1")]).await.status, 303);
        }
    }
    assert_eq!(request_state(&app, rid), "deploying");
    let who: Vec<Option<i64>> = app
        .with_conn(|c| {
            pyc_checklist::table.filter(pyc_checklist::required.eq(true)).select(pyc_checklist::done_by).load(c)
        })
        .unwrap_or_default();
    assert!(who.iter().all(|w| w.is_some()), "each tick records who");
    assert_eq!(
        tech.post(
            &format!("/pyc/{id}/data"),
            &[
                ("pos_parent", "PP-7788"),
                ("pos_id", "POS-123456"),
                ("key1", "K1-SECRET-abc"),
                ("key2", "K2-SECRET-xyz")
            ]
        )
        .await
        .status,
        303
    );
    let bad = |f: reqwest::multipart::Form| {
        f.part("screenshot", reqwest::multipart::Part::bytes(b"GIF89a not allowed".to_vec()).file_name("x.gif"))
    };
    tech.upload(&format!("/pyc/{id}/screenshot"), bad).await;
    assert!(tech.get(&format!("/pyc/{id}")).await.body.contains("Ảnh phải là PNG, JPEG hoặc WebP"));
    let shot = |f: reqwest::multipart::Form| {
        f.part("screenshot", reqwest::multipart::Part::bytes(PNG.to_vec()).file_name("ok.png"))
    };
    assert_eq!(tech.upload(&format!("/pyc/{id}/screenshot"), shot).await.status, 303);
    // Shown in the page, sandboxed when opened on its own.
    let policy = tech.header(&format!("/pyc/{id}/screenshot"), "content-security-policy").await.unwrap_or_default();
    assert!(policy.starts_with("sandbox; default-src 'none'"), "{policy}");
    let v = version(&app, id);
    assert_eq!(tech.post(&format!("/pyc/{id}/deployed"), &[("version", v.as_str())]).await.status, 303);
    let state: String = app.with_conn(|c| pycs::table.find(id).select(pycs::state).first(c)).unwrap_or_default();
    assert_eq!(state, "deployed");

    // Keys: sealed at rest; revealed only to allowed roles, each reveal audited.
    let (k1, k2): (Option<String>, Option<String>) =
        app.with_conn(|c| pycs::table.find(id).select((pycs::key1_enc, pycs::key2_enc)).first(c)).unwrap_or_default();
    let (k1, k2) = (k1.unwrap_or_default(), k2.unwrap_or_default());
    use hubgate::secrets::{PYC_KEY1, PYC_KEY2};
    let keys = app.state.config.keyring();
    assert_eq!(keys.open(&PYC_KEY1, id, &k1).ok().as_deref(), Some("K1-SECRET-abc"), "{k1}");
    assert_eq!(keys.open(&PYC_KEY2, id, &k2).ok().as_deref(), Some("K2-SECRET-xyz"), "{k2}");
    // Encrypted, not merely encoded: another key cannot open them, nor can the right key
    // for another row or column, and no decoding of the stored text shows the key.
    let wrong = hubgate::secrets::Keyring::new(hubgate::config::SecretKey::from_bytes(vec![7; 32]), Vec::new());
    // Relabelled with the wrong key's id, so that key really tries to open it.
    let (format, rest) = k1.split_once(':').unwrap_or_default();
    let relabelled = format!("{format}:{}:{}", wrong.current_id(), rest.split_once(':').unwrap_or_default().1);
    assert!(wrong.open(&PYC_KEY1, id, &relabelled).is_err(), "a wrong key opens {relabelled}");
    assert!(keys.open(&PYC_KEY1, id + 1, &k1).is_err(), "bound to its row");
    assert!(keys.open(&PYC_KEY2, id, &k1).is_err(), "bound to its column");
    for stored in [&k1, &k2] {
        let body = stored.rsplit(':').next().unwrap_or_default();
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap_or_default();
        assert!(raw.len() > "K1-SECRET-abc".len(), "{stored}");
        assert!(!raw.windows(9).any(|w| w == b"K1-SECRET" || w == b"K2-SECRET"), "{stored} holds the key in clear");
    }
    if backend == hubgate::db::Backend::Sqlite {
        let _ = app.with_conn(|c| diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(c));
        let file = std::fs::read(app.data_dir.path().join("hubgate.db")).unwrap_or_default();
        assert!(!file.windows(9).any(|w| w == b"K1-SECRET"), "the database file never holds a key in clear");
    }
    assert!(!tech.get(&format!("/pyc/{id}")).await.body.contains("K1-SECRET-abc"), "hidden until asked");
    assert_eq!(sale.post(&format!("/pyc/{id}/reveal"), &[]).await.status, 403);
    let shown = tech.post(&format!("/pyc/{id}/reveal"), &[]).await;
    assert!(shown.body.contains("K1-SECRET-abc") && shown.body.contains("K2-SECRET-xyz"));
    let reveals: i64 = app
        .with_conn(|c| audit_log::table.filter(audit_log::action.eq("reveal_keys")).count().get_result(c))
        .unwrap_or(0);
    assert_eq!(reveals, 1);

    // B5: the reply to the partner, in its thread, with the screenshot.
    let draft = tech.get(&format!("/pyc/{id}/reply")).await;
    assert!(draft.body.contains("POS Parent: PP-7788") && draft.body.contains("POS ID: POS-123456"));
    // The partner's own reply template, when set, is what the draft uses.
    app.with_conn(|c| {
        use hubgate::db::schema::partners;
        diesel::update(partners::table.filter(partners::code.eq("MOMO")))
            .set(partners::reply_template.eq("Gửi {partner}: {pyc} đã xong, POS ID {pos_id}.\n{sender}"))
            .execute(c)
    })
    .unwrap_or(0);
    let templated = tech.get(&format!("/pyc/{id}/reply")).await;
    assert!(
        templated.body.contains(&format!("Gửi Ví điện tử MoMo: {number} đã xong, POS ID POS-123456.")),
        "{}",
        templated.body
    );
    let v = version(&app, id);
    let sent = tech
        .post(
            &format!("/pyc/{id}/reply"),
            &[
                ("version", v.as_str()),
                ("to", "hub@momo.vn"),
                ("cc", "lan@phothin.vn"),
                ("subject", "RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"),
                ("body", "Kính gửi MoMo,\n\nPOS Parent: PP-7788\nPOS ID: POS-123456\n\nTrân trọng"),
            ],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(request_state(&app, rid), "replied");
    crate::desk::work_until(&app, || inbox.received().len() >= 2).await;
    let received = inbox.received();
    let reply = received
        .iter()
        .filter_map(|raw| mail_parser::MessageParser::default().parse(raw))
        .find(|m| m.body_text(0).is_some_and(|t| t.contains("PP-7788")))
        .unwrap_or_else(|| panic!("no B5 mail"));
    assert_eq!(reply.in_reply_to().as_text(), Some("A01.outlook@momo.vn"));
    let refs = reply.references().as_text_list().map(|l| l.len()).unwrap_or(0);
    assert!(refs >= 3, "the whole thread is referenced");
    use mail_parser::MimeHeaders;
    let att = reply.attachments().next().unwrap_or_else(|| panic!("no screenshot"));
    assert!(att.attachment_name().is_some_and(|n| n.starts_with("ket-noi-thanh-cong-PYC-")));
    assert_eq!(att.contents(), PNG);

    // The 0 đ invoice closes it; the not-invoiced list forgets it.
    assert!(accountant.get("/pyc?state=deployed").await.body.contains(&number));
    assert_eq!(
        tech.post(&format!("/pyc/{id}/invoice"), &[("version", "0"), ("number", "x"), ("date", "2026-11-24")])
            .await
            .status,
        403
    );
    let v = version(&app, id);
    assert_eq!(
        accountant
            .post(
                &format!("/pyc/{id}/invoice"),
                &[("version", v.as_str()), ("number", "0000123"), ("date", "2026-11-24")]
            )
            .await
            .status,
        303
    );
    assert_eq!(request_state(&app, rid), "invoiced");
    assert!(!accountant.get("/pyc?state=deployed").await.body.contains(&number));
    let page = accountant.get(&format!("/pyc/{id}")).await;
    assert!(page.body.contains("0000123"));
}

/// Numbers are unique and gap-free when many creators race on PostgreSQL.
#[actix_web::test]
async fn numbering_under_concurrency_on_postgres() {
    // One connection per thread: each holds its own for all 25 numbers, and with fewer
    // the others would wait out the pool's timeout on a slow machine.
    let threads = 8;
    let Some(app) =
        crate::support::TestApp::start_with(hubgate::db::Backend::Postgres, |c| c.db_pool_size = threads + 1).await
    else {
        return;
    };
    let pool = app.state.pool.clone();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || -> Vec<i64> {
                let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
                (0..25)
                    .map(|i| {
                        conn.transaction(|c| -> diesel::QueryResult<i64> {
                            let n = hubgate::pyc::models::next_number(c, 2026)?;
                            if i % 5 == 4 {
                                // A failed creation: its number must come back.
                                return Err(diesel::result::Error::RollbackTransaction);
                            }
                            Ok(n)
                        })
                        .unwrap_or(-1)
                    })
                    .collect()
            })
        })
        .collect();
    let mut numbers: Vec<i64> =
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).filter(|n| *n > 0).collect();
    numbers.sort();
    assert_eq!(numbers.len(), 160);
    assert_eq!(numbers, (1..=160).collect::<Vec<_>>(), "no duplicates and no gaps");
}
