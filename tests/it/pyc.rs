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
        // The point's own contact, in the fields (the notes quote it too).
        "name=\"support_person\" value=\"Chị Lan\"",
        "name=\"support_phone\" value=\"0912345678\"",
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

/// A MoMo PYC drafted through the form by `sale`; (request id, PYC id).
async fn drafted(app: &crate::support::TestApp, sale: &crate::support::Browser) -> (i64, i64) {
    let rid = accepted_momo_request(app, sale).await;
    let created = sale.post(&format!("/requests/{rid}/pyc"), &MOMO_PYC).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id =
        app.with_conn(|c| pycs::table.filter(pycs::request_id.eq(rid)).select(pycs::id).first::<i64>(c)).unwrap_or(-1);
    (rid, id)
}

/// The MoMo form with some fields changed.
fn edited<'a>(version: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form: Vec<(&str, &str)> = MOMO_PYC.to_vec();
    for (k, v) in changes {
        if let Some(f) = form.iter_mut().find(|f| f.0 == *k) {
            f.1 = v;
        }
    }
    form.push(("version", version));
    form
}

db_test!(a_draft_pyc_is_edited_until_it_is_reviewed, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let sale = app.login("sale@ipos.vn").await;
    let (_, id) = drafted(&app, &sale).await;
    let page = sale.get(&format!("/pyc/{id}")).await;
    assert!(page.body.contains("Sửa PYC nháp") && page.body.contains("value=\"HD-MOMO-20261102\""));
    let contract =
        || app.with_conn(|c| pycs::table.find(id).select(pycs::contract_code).first::<String>(c)).unwrap_or_default();

    let v = version(&app, id);
    let r = sale
        .post(
            &format!("/pyc/{id}"),
            &edited(&v, &[("contract_code", "HD-MOMO-SUA-01"), ("support_phone", "0988 000 111")]),
        )
        .await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some(format!("/pyc/{id}").as_str())));
    let page = sale.get(&format!("/pyc/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "success"), ["Đã lưu PYC."]);
    assert!(page.body.contains("value=\"HD-MOMO-SUA-01\"") && page.body.contains("value=\"0988 000 111\""));
    assert!(!page.body.contains("HD-MOMO-20261102"));
    let audit = crate::support::audit_trail(&app, "pyc", id);
    assert!(audit.last().is_some_and(|a| a.0 == "update" && a.2.contains("HD-MOMO-SUA-01")), "{audit:?}");

    // The old form (its version), a form missing a required field, a technician: refused, nothing changes.
    sale.post(&format!("/pyc/{id}"), &edited(&v, &[("contract_code", "HD-CU")])).await;
    assert_eq!(
        crate::support::flashes(&sale.get(&format!("/pyc/{id}")).await, "error"),
        ["PYC vừa được người khác cập nhật. Vui lòng tải lại trang."]
    );
    let v = version(&app, id);
    sale.post(&format!("/pyc/{id}"), &edited(&v, &[("contract_code", " "), ("location", "")])).await;
    assert_eq!(
        crate::support::flashes(&sale.get(&format!("/pyc/{id}")).await, "error"),
        ["Còn thiếu: Mã hợp đồng, Địa điểm triển khai."]
    );
    let tech = app.login("kythuat@ipos.vn").await;
    assert_eq!(tech.post(&format!("/pyc/{id}"), &edited(&v, &[("contract_code", "HD-KT")])).await.status, 403);
    assert_eq!(contract(), "HD-MOMO-SUA-01");
    assert_eq!(crate::support::audit_trail(&app, "pyc", id).iter().filter(|a| a.0 == "update").count(), 1);

    // Reviewed (B7): no longer a draft, so no longer edited; the page shows what was saved.
    let leader = app.login("leader@ipos.vn").await;
    assert_eq!(leader.post(&format!("/pyc/{id}/review"), &[("version", v.as_str())]).await.status, 303);
    let v = version(&app, id);
    sale.post(&format!("/pyc/{id}"), &edited(&v, &[("contract_code", "HD-MUON")])).await;
    let page = sale.get(&format!("/pyc/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "error"), ["Chỉ sửa được PYC nháp."]);
    assert!(!page.body.contains("Sửa PYC nháp") && page.body.contains("<dt>Mã hợp đồng</dt><dd>HD-MOMO-SUA-01</dd>"));
    assert_eq!(contract(), "HD-MOMO-SUA-01");
});

db_test!(a_checklist_item_is_unticked_and_the_screenshot_downloads, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let sale = app.login("sale@ipos.vn").await;
    let leader = app.login("leader@ipos.vn").await;
    let tech = app.login("kythuat@ipos.vn").await;
    let (_, id) = drafted(&app, &sale).await;
    assert_eq!(tech.get(&format!("/pyc/{id}/screenshot")).await.status, 404, "none yet");
    assert_eq!(leader.post(&format!("/pyc/{id}/review"), &[("version", version(&app, id).as_str())]).await.status, 303);
    assert_eq!(sale.post(&format!("/pyc/{id}/create"), &[("version", version(&app, id).as_str())]).await.status, 303);
    let items: Vec<(i64, String, bool)> = app
        .with_conn(|c| {
            pyc_checklist::table
                .filter(pyc_checklist::pyc_id.eq(id))
                .order(pyc_checklist::position)
                .select((pyc_checklist::id, pyc_checklist::label, pyc_checklist::required))
                .load(c)
        })
        .unwrap_or_default();
    for (item, _, required) in &items {
        if *required {
            assert_eq!(tech.post(&format!("/pyc/{id}/items/{item}"), &[("done", "1")]).await.status, 303);
        }
    }
    let (item, label, _) = items.iter().find(|i| i.2).cloned().unwrap_or_default();
    let done_of = |item: i64| -> (Option<i64>, bool) {
        app.with_conn(|c| {
            pyc_checklist::table
                .find(item)
                .select((pyc_checklist::done_by, pyc_checklist::done_at.is_not_null()))
                .first(c)
        })
        .unwrap_or_default()
    };
    assert!(done_of(item).1);
    let ticked_form = format!("action=\"/pyc/{id}/items/{item}\" class=\"inline\">");
    let form_of = |body: &str| -> String {
        body.split(&ticked_form).nth(1).and_then(|s| s.split("</form>").next()).unwrap_or_default().to_string()
    };
    assert!(form_of(&tech.get(&format!("/pyc/{id}")).await.body).contains("tick done"), "shown ticked");

    // Unticked: not done any more, by nobody; the page offers the tick again and finishing waits for it.
    let r = tech.post(&format!("/pyc/{id}/items/{item}"), &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(done_of(item), (None, false));
    let page = tech.get(&format!("/pyc/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "success"), ["Đã cập nhật checklist."]);
    let form = form_of(&page.body);
    assert!(form.contains("name=\"done\" value=\"1\"") && form.contains("○") && !form.contains("tick done"), "{form}");
    let audit = crate::support::audit_trail(&app, "pyc_item", item);
    assert_eq!(audit.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["done", "undone"]);
    let blockers = app
        .with_conn(|c| {
            let p = hubgate::pyc::models::pyc(c, id)?;
            hubgate::pyc::service::deploy_blockers(c, &p)
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(blockers.contains(&format!("Chưa xong: {label}")), "{blockers:?}");
    // Sales may not tick or untick.
    assert_eq!(sale.post(&format!("/pyc/{id}/items/{item}"), &[("done", "1")]).await.status, 403);

    // The screenshot comes back byte for byte, the newest one when replaced.
    let png = |tail: u8| -> Vec<u8> {
        use base64::Engine;
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(crate::desk::PNG_B64).unwrap_or_default();
        bytes.push(tail);
        bytes
    };
    for tail in [1u8, 2] {
        let shot = png(tail);
        let part = shot.clone();
        let r = tech
            .upload(&format!("/pyc/{id}/screenshot"), move |f| {
                f.part("screenshot", reqwest::multipart::Part::bytes(part).file_name("ket-noi.png"))
            })
            .await;
        assert_eq!(r.status, 303);
        for who in [&tech, &sale] {
            let (status, headers, body) = who.fetch(&format!("/pyc/{id}/screenshot")).await;
            assert_eq!(status, 200);
            assert_eq!(body, shot, "the stored image, as uploaded");
            assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
        }
    }
    assert!(
        tech.get(&format!("/pyc/{id}"))
            .await
            .body
            .contains(&format!("<img class=\"shot\" src=\"/pyc/{id}/screenshot\""))
    );

    // A phone's screenshot of up to 5 MB is kept; one byte more is refused with the
    // limit named, and the stored image stays.
    let mut largest = png(3);
    largest.resize(5 * 1024 * 1024, 0);
    for (shot, flash) in [(largest.clone(), "success"), ([largest.as_slice(), &[0]].concat(), "error")] {
        let r = tech
            .upload(&format!("/pyc/{id}/screenshot"), move |f| {
                f.part("screenshot", reqwest::multipart::Part::bytes(shot).file_name("ket-noi.png"))
            })
            .await;
        assert_eq!(r.status, 303);
        let expected = if flash == "success" { "Đã lưu ảnh kết nối." } else { "Ảnh lớn hơn 5 MB." };
        assert_eq!(crate::support::flashes(&tech.get(&format!("/pyc/{id}")).await, flash), [expected]);
        let (_, _, body) = tech.fetch(&format!("/pyc/{id}/screenshot")).await;
        assert!(body == largest, "the 5 MB image is the one stored ({} bytes back)", body.len());
    }
});

db_test!(a_new_template_version_gives_new_pycs_its_checklist, |app| {
    use hubgate::db::schema::pyc_templates;
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await;
    let sale = app.login("sale@ipos.vn").await;
    let (_, before) = drafted(&app, &sale).await;
    let items_of = |pyc: i64| -> Vec<String> {
        app.with_conn(|c| {
            pyc_checklist::table
                .filter(pyc_checklist::pyc_id.eq(pyc))
                .order(pyc_checklist::position)
                .select(pyc_checklist::label)
                .load(c)
        })
        .unwrap_or_default()
    };
    let old_items = items_of(before);
    assert_eq!(old_items.len(), 8);
    let versions = || -> i64 {
        app.with_conn(|c| pyc_templates::table.filter(pyc_templates::kind.eq("payment")).count().get_result(c))
            .unwrap_or(0)
    };
    let n = versions();
    let r = admin
        .post(
            "/admin/pyc-templates",
            &[
                ("kind", "payment"),
                ("body", "Ghi chú {partner} bản mới"),
                ("items", "*Cài app đối tác\nGọi xác nhận với merchant"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(versions(), n + 1);
    let page = admin.get("/admin/pyc-templates").await;
    assert!(
        page.body.contains(&format!("<b>payment</b> v{}", n + 1))
            && page.body.contains(&format!("<b>payment</b> v{n}"))
    );

    // A second MoMo request's PYC takes the new version's notes and checklist.
    let rid = {
        let b = app.login("sale@ipos.vn").await;
        let pid = crate::support::partner_id(&app, "MOMO").to_string();
        let r = b
            .post(
                "/requests",
                &[("partner_id", pid.as_str()), ("merchant_name", "Cơm Tấm Thuận Kiều"), ("point_name", "Thuận Kiều")],
            )
            .await;
        let rid: i64 =
            r.location.as_deref().and_then(|l| l.rsplit('/').next()).and_then(|s| s.parse().ok()).unwrap_or(-1);
        app.create_user("leader@ipos.vn", &[Role::Leader]);
        let leader = app.login("leader@ipos.vn").await;
        leader.post(&format!("/requests/{rid}/confirmations"), &[("kind", "merchant"), ("reason", "gọi điện")]).await;
        leader.post(&format!("/requests/{rid}/confirmations"), &[("kind", "leader"), ("reason", "gọi điện")]).await;
        let v = app
            .with_conn(|c| requests::table.find(rid).select(requests::version).first::<i64>(c))
            .unwrap_or(-1)
            .to_string();
        let ok = b
            .post(
                &format!("/requests/{rid}/accept"),
                &[("version", v.as_str()), ("to", "hub@momo.vn"), ("subject", "OK"), ("body", "Đồng ý")],
            )
            .await;
        assert_eq!(ok.status, 303, "{}", ok.body);
        rid
    };
    let form = sale.get(&format!("/requests/{rid}/pyc/new")).await;
    assert!(form.body.contains("Ghi chú MOMO bản mới"), "{}", form.body);
    let created = sale.post(&format!("/requests/{rid}/pyc"), &MOMO_PYC).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let after =
        app.with_conn(|c| pycs::table.filter(pycs::request_id.eq(rid)).select(pycs::id).first::<i64>(c)).unwrap_or(-1);
    assert_eq!(items_of(after), ["Cài app đối tác", "Gọi xác nhận với merchant"]);
    let page = sale.get(&format!("/pyc/{after}")).await.body;
    assert!(page.contains(&format!("mẫu payment v{}", n + 1)));
    // Steps are numbered from 1, as a technician reads them out on the phone.
    assert!(
        page.contains(r#"<span class="step-no">1.</span> Cài app đối tác"#)
            && page.contains(r#"<span class="step-no">2.</span> Gọi xác nhận với merchant"#),
        "{page}"
    );
    // The PYC made before keeps its version and its checklist.
    assert_eq!(items_of(before), old_items);
    assert!(sale.get(&format!("/pyc/{before}")).await.body.contains(&format!("mẫu payment v{n}")));
});

db_test!(pyc_lists_filter_and_page, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    let actor = hubgate::audit::Actor::user(sale.id, &sale.email);
    let lead = hubgate::audit::Actor::user(leader.id, &leader.email);
    let vnpay = crate::support::partner_id(&app, "VNPAY");
    // A page and one more of drafts; two of them reviewed.
    let ids: Vec<i64> = (0..51)
        .map(|n| {
            app.with_conn(|c| -> Result<i64, hubgate::error::AppError> {
                let input = hubgate::hub::service::OpenRequest {
                    partner_id: vnpay,
                    merchant_name: format!("Nhà hàng số {n:02}"),
                    point_name: format!("Chi nhánh {n:02}"),
                    ..Default::default()
                };
                let rid = hubgate::hub::service::open_request(c, &actor, &input)?;
                hubgate::hub::service::manual_confirmation(c, &lead, rid, "merchant", "gọi điện")?;
                let mut d = hubgate::hub::service::acceptance_draft(c, rid, "Sale")?;
                d.to = "hub@vnpay.vn".into();
                let v = hubgate::hub::models::request(c, rid)?.version;
                hubgate::hub::service::accept(c, &app.state.config.outbound, &actor, rid, v, &d)?;
                let (fields, _) = hubgate::pyc::service::draft_fields(c, rid)?;
                hubgate::pyc::service::create(c, &app.state.config, &actor, rid, &fields)
            })
            .unwrap_or_else(|e| panic!("{e:?}"))
        })
        .collect();
    for id in [ids[3], ids[40]] {
        let v = version(&app, id).parse().unwrap_or(-1);
        app.with_conn(|c| {
            hubgate::pyc::service::advance(c, &app.state.config, &lead, id, v, hubgate::pyc::PycState::Reviewed)
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let b = app.login("sale@ipos.vn").await;
    let sorted = |mut v: Vec<i64>| {
        v.sort();
        v
    };
    let first = b.get("/pyc").await;
    assert!(first.body.contains("51 PYC · trang 1/2"), "{}", first.body);
    let (all, sizes) = crate::support::all_pages(&b, "/pyc", "/pyc/").await;
    assert_eq!((sizes, sorted(all)), (vec![50, 1], ids.clone()));
    let drafts = b.get("/pyc?state=draft").await;
    assert!(drafts.body.contains("49 PYC · trang 1/1"));
    let (found, _) = crate::support::all_pages(&b, "/pyc?state=draft", "/pyc/").await;
    assert_eq!(sorted(found), ids.iter().copied().filter(|i| *i != ids[3] && *i != ids[40]).collect::<Vec<_>>());
    for (query, expected) in [
        ("state=reviewed", vec![ids[3], ids[40]]),
        ("state=reviewed&q=nha%20hang%20so%2040", vec![ids[40]]),
        ("state=deployed", vec![]),
        ("q=NHÀ%20HÀNG%20SỐ%2007", vec![ids[7]]),
    ] {
        let page = b.get(&format!("/pyc?{query}")).await;
        assert_eq!(sorted(crate::support::linked_ids(&page.body, "/pyc/")), sorted(expected.clone()), "{query}");
    }
    // A page number typed far past the end is an empty page, not an error.
    let far = b.get(&format!("/pyc?page={}", i64::MAX)).await;
    assert_eq!(far.status, 200, "{}", far.body);
    assert!(crate::support::linked_ids(&far.body, "/pyc/").is_empty());
});
