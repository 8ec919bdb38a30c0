//! The connection request flow through the HTTP handlers, with mail arriving through
//! the ingest function.

use diesel::prelude::*;
use hubgate::accounts::Role;
use hubgate::db::schema::{mail_messages, requests};
use hubgate::mail::inbound::service;

fn state_of(app: &crate::support::TestApp, id: i64) -> (String, i64) {
    app.with_conn(|c| requests::table.find(id).select((requests::state, requests::version)).first(c))
        .unwrap_or_default()
}

fn newest_request(app: &crate::support::TestApp) -> i64 {
    app.with_conn(|c| requests::table.select(requests::id).order(requests::id.desc()).first(c)).unwrap_or(-1)
}

/// The entries of a request page's timeline ("Lịch sử"), each as its markup: the step
/// bar and header above it name people and states whatever happened.
pub(crate) fn timeline(body: &str) -> Vec<String> {
    let start = body.find("<ol class=\"timeline\">").unwrap_or_else(|| panic!("no timeline on {body}"));
    let list = &body[start..];
    let list = &list[..list.find("</ol>").unwrap_or(list.len())];
    list.split("<li>").skip(1).map(|li| li.split("</li>").next().unwrap_or_default().to_string()).collect()
}

/// A request list as a person reads it: the count and the requests its rows link to.
pub(crate) fn listed(body: &str) -> (usize, std::collections::BTreeSet<i64>) {
    crate::support::listed(body, "yêu cầu", "/requests/")
}

/// A request opened through the service for `partner`, then put in `state` directly:
/// a row that a list filter must leave out.
pub(crate) fn seed_request(app: &crate::support::TestApp, partner: &str, merchant: &str, state: &str) -> i64 {
    let input = hubgate::hub::service::OpenRequest {
        partner_id: crate::support::partner_id(app, partner),
        mail_id: None,
        merchant_name: merchant.into(),
        merchant_contact: String::new(),
        merchant_phone: String::new(),
        point_name: format!("{merchant} - điểm 1"),
        point_address: "1 Lý Thường Kiệt, Hà Nội".into(),
        point_contact: String::new(),
        point_phone: String::new(),
        extra_points: Vec::new(),
    };
    let actor = hubgate::audit::Actor::system("test");
    let id = app
        .with_conn(|c| hubgate::hub::service::open_request(c, &actor, &input))
        .unwrap_or_else(|e| panic!("seed request: {e:?}"));
    app.with_conn(|c| diesel::update(requests::table.find(id)).set(requests::state.eq(state)).execute(c))
        .unwrap_or_else(|e| panic!("seed state: {e}"));
    id
}

/// Sales opens the request for Phở Thìn (the a01 mail's point) from that mail.
pub(crate) async fn open_pho_thin(sale: &crate::support::Browser, partner: i64, mail: i64) -> crate::support::Page {
    let (partner, mail) = (partner.to_string(), mail.to_string());
    sale.post(
        "/requests",
        &[
            ("partner_id", partner.as_str()),
            ("mail_id", mail.as_str()),
            ("merchant_name", "Phở Thìn Lò Đúc"),
            ("point_name", "Phở Thìn - 13 Lò Đúc"),
            ("point_address", "13 Lò Đúc, Hai Bà Trưng, Hà Nội"),
            ("point_contact", "Chị Lan"),
            ("point_phone", "0912345678"),
        ],
    )
    .await
}

db_test!(momo_request_from_mail_to_accepted, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let opening = crate::support::ingest_corpus(&app, "a01");
    let merchant_ok = crate::support::ingest_corpus(&app, "a02");
    let sale = app.login("sale@ipos.vn").await;

    // The form is prefilled from the mail.
    let form = sale.get(&format!("/requests/new?mail={opening}")).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"Phở Thìn Lò Đúc\""), "{}", form.body);
    assert!(form.body.contains("13 Lò Đúc, Hai Bà Trưng, Hà Nội"));
    let partner_id: i64 = app
        .with_conn(|c| mail_messages::table.find(opening).select(mail_messages::partner_id).first::<Option<i64>>(c))
        .ok()
        .flatten()
        .unwrap_or(-1);
    let pid = partner_id.to_string();
    let mid = opening.to_string();
    let created = open_pho_thin(&sale, partner_id, opening).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = newest_request(&app);
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(
        page.body.contains("Xác nhận của merchant qua thư của lan@phothin.vn"),
        "the merchant's mail in the thread counts"
    );
    assert!(page.body.contains("Chưa có xác nhận của leader MOMO"), "MoMo requires its leader");
    assert!(page.body.contains("Thư đến"), "mails are on the timeline");
    assert_ne!(merchant_ok, -1);

    // Opening a second request from the same conversation is refused.
    let again = sale
        .post(
            "/requests",
            &[("partner_id", pid.as_str()), ("mail_id", mid.as_str()), ("merchant_name", "X"), ("point_name", "Y")],
        )
        .await;
    assert_eq!(again.status, 422);
    assert!(again.body.contains("đã gắn với yêu cầu"));

    // Accepting without the leader is refused with the reason.
    let (_, v0) = state_of(&app, id);
    let v = v0.to_string();
    let early = sale.get(&format!("/requests/{id}/accept")).await;
    assert!(early.body.contains("Chưa có xác nhận của leader MOMO"));
    let refused = sale
        .post(
            &format!("/requests/{id}/accept"),
            &[("version", v.as_str()), ("to", "hub@momo.vn"), ("subject", "RE: x"), ("body", "Đồng ý")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Chưa thể chấp nhận"));
    assert_eq!(state_of(&app, id).0, "received");
    // Nor through the plain transition, which would skip the mail.
    sale.post(&format!("/requests/{id}/transition"), &[("to", "accepted"), ("version", v.as_str())]).await;
    assert_eq!(state_of(&app, id).0, "received");

    // The leader's approval arrives by mail in the same conversation.
    crate::support::ingest_corpus(&app, "a03");
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains("Xác nhận của leader đối tác qua thư của leader@momo.vn"), "{}", page.body);

    // A technician may read but not accept.
    let tech = app.login("kythuat@ipos.vn").await;
    assert_eq!(tech.get(&format!("/requests/{id}")).await.status, 200);
    assert_eq!(tech.get(&format!("/requests/{id}/accept")).await.status, 403);

    // B2: the acceptance mail is drafted as a reply in the partner's thread.
    let draft = sale.get(&format!("/requests/{id}/accept")).await;
    assert_eq!(draft.status, 200);
    assert!(draft.body.contains("value=\"hub@momo.vn\""), "{}", draft.body);
    assert!(
        draft.body.contains("lan@phothin.vn") && draft.body.contains("leader@momo.vn"),
        "merchant and leader in copy"
    );
    assert!(draft.body.contains("RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"));
    assert!(draft.body.contains("A01.outlook@momo.vn"));
    let fields = [
        ("version", v.as_str()),
        ("to", "hub@momo.vn"),
        ("cc", "lan@phothin.vn, leader@momo.vn"),
        ("subject", "RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"),
        ("body", "Kính gửi MoMo,\n\niPOS đồng ý mở cổng cho Phở Thìn (đã sửa tay).\n\nTrân trọng"),
    ];
    let ok = sale.post(&format!("/requests/{id}/accept"), &fields).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(state_of(&app, id).0, "accepted");
    // The same (now stale) form again: refused, not applied twice, no second mail.
    let stale = sale.post(&format!("/requests/{id}/accept"), &fields).await;
    assert_eq!(stale.status, 422);
    assert!(stale.body.contains("vừa được người khác cập nhật"));
    assert_eq!(state_of(&app, id), ("accepted".to_string(), v0 + 1));
    let outbox: Vec<(Option<String>, String, String)> = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_outbox;
            mail_outbox::table.select((mail_outbox::in_reply_to, mail_outbox::refs, mail_outbox::text_body)).load(c)
        })
        .unwrap_or_default();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0.as_deref(), Some("A01.outlook@momo.vn"));
    assert!(outbox[0].1.contains("A01.outlook@momo.vn") && outbox[0].1.contains("a03-leader@momo.vn"));
    assert!(outbox[0].2.contains("đã sửa tay"), "the edited text is what goes out");
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains("Thư đi"), "the outgoing mail is on the timeline");
    // No skipping ahead.
    let v1 = (v0 + 1).to_string();
    sale.post(&format!("/requests/{id}/transition"), &[("to", "invoiced"), ("version", v1.as_str())]).await;
    assert!(sale.get(&format!("/requests/{id}")).await.body.contains("Không thể chuyển"));
    // Nor a step the state machine allows but that has its own action: Accepted → Ticket
    // would skip the PYC.
    sale.post(&format!("/requests/{id}/transition"), &[("to", "ticket"), ("version", v1.as_str())]).await;
    assert!(sale.get(&format!("/requests/{id}")).await.body.contains("Không thể chuyển tay sang"));
    assert_eq!(state_of(&app, id), ("accepted".to_string(), v0 + 1), "still accepted");

    // The partner answers our acceptance mail: it joins the request's conversation.
    let our_id: String = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_outbox;
            mail_outbox::table.select(mail_outbox::message_id).first(c)
        })
        .unwrap_or_default();
    let answer = format!(
        "From: hub@momo.vn\r\nTo: hub@ipos.vn\r\nSubject: Re: Chap nhan\r\nMessage-ID: <ans1@momo.vn>\r\nIn-Reply-To: <{our_id}>\r\nDate: Tue, 3 Nov 2026 09:00:00 +0700\r\n\r\nCam on iPOS.\r\n"
    );
    let cfg = app.state.config.mail.clone();
    let r = app
        .with_conn(|c| service::ingest(c, &cfg, answer.as_bytes(), "test", None))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.request_id, Some(id), "threaded by our own Message-ID");

    // The reply in the thread lands on the timeline; "Việc của tôi" lists the request.
    let reply = crate::support::ingest_corpus(&app, "a04");
    let entries = timeline(&sale.get(&format!("/requests/{id}")).await.body);
    assert!(
        entries.iter().any(|e| e.contains("<span class=\"tag\">Thư đến</span> <b>sale@ipos.vn</b>")
            && e.contains(&format!("href=\"/mail/{reply}\""))),
        "the reply is on the timeline: {entries:#?}"
    );
    let my = sale.get("/my").await;
    assert!(my.body.contains("Thư đối tác cần phân loại"), "sales see the mail to triage");
    assert!(my.body.contains(&format!("#{id}")), "accepted requests wait for a PYC from sales");
    // Rows each filter must leave out: MoMo's in another state, another partner's accepted.
    let received = seed_request(&app, "MOMO", "Bún Chả Hương Liên", "received");
    let other_partner = seed_request(&app, "GIFTPOP", "Highlands Coffee", "accepted");
    let list = sale.get("/requests?partner=MOMO&state=accepted").await;
    assert_eq!(listed(&list.body), (1, std::collections::BTreeSet::from([id])));
    let all = listed(&sale.get("/requests").await.body);
    assert!([id, received, other_partner].iter().all(|r| all.1.contains(r)), "unfiltered, all are listed: {all:?}");
});

db_test!(giftpop_needs_no_leader_and_leaders_confirm_by_hand, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    let sale = app.login("sale@ipos.vn").await;
    let leader = app.login("leader@ipos.vn").await;
    let pid: i64 = crate::support::partner_id(&app, "GIFTPOP");
    let pid = pid.to_string();
    let r = sale
        .post(
            "/requests",
            &[
                ("partner_id", pid.as_str()),
                ("merchant_name", "The Coffee House"),
                ("point_name", "TCH Nguyễn Huệ"),
                ("extra_points", "TCH Lê Lợi – 1 Lê Lợi, Quận 1\nTCH Hồ Tây | 5 Quảng An"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let id = newest_request(&app);
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains("Chưa có xác nhận của merchant."));
    assert!(
        page.body.contains("TCH Lê Lợi – 1 Lê Lợi, Quận 1") && page.body.contains("TCH Hồ Tây – 5 Quảng An"),
        "one request, three points"
    );
    // Hand it to the leader.
    let leader_id: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::users;
            users::table.filter(users::email.eq("leader@ipos.vn")).select(users::id).first(c)
        })
        .unwrap_or(-1);
    let lid = leader_id.to_string();
    assert_eq!(sale.post(&format!("/requests/{id}/assign"), &[("assignee_id", lid.as_str())]).await.status, 303);
    // Someone else's request is not the leader's.
    let not_theirs = seed_request(&app, "GIFTPOP", "Katinat", "received");
    assert_eq!(
        listed(&leader.get("/requests?mine=1").await.body),
        (1, std::collections::BTreeSet::from([id])),
        "the leader finds it, and only it, under “Tôi phụ trách”"
    );
    assert!(listed(&leader.get("/requests").await.body).1.contains(&not_theirs));
    assert!(!page.body.contains("Chưa có xác nhận của leader"));
    // Sales cannot record a manual confirmation; a leader can, with a reason.
    assert_eq!(
        sale.post(&format!("/requests/{id}/confirmations"), &[("kind", "merchant"), ("reason", "gọi điện")])
            .await
            .status,
        403
    );
    leader.post(&format!("/requests/{id}/confirmations"), &[("kind", "merchant"), ("reason", " ")]).await;
    assert!(leader.get(&format!("/requests/{id}")).await.body.contains("Vui lòng ghi lý do"));
    assert_eq!(
        leader
            .post(
                &format!("/requests/{id}/confirmations"),
                &[("kind", "merchant"), ("reason", "Merchant xác nhận qua điện thoại")]
            )
            .await
            .status,
        303
    );
    let v = state_of(&app, id).1.to_string();
    // A request opened by hand has no thread: the address is typed in.
    let accepted = sale
        .post(
            &format!("/requests/{id}/accept"),
            &[("version", v.as_str()), ("to", "ops@giftpop.vn"), ("subject", "Mở cổng TCH"), ("body", "Đồng ý")],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(state_of(&app, id).0, "accepted");

    // Cancelling needs a reason and closes the request.
    let v = state_of(&app, id).1.to_string();
    sale.post(&format!("/requests/{id}/transition"), &[("to", "cancelled"), ("version", v.as_str()), ("reason", "")])
        .await;
    assert_eq!(state_of(&app, id).0, "accepted");
    sale.post(
        &format!("/requests/{id}/transition"),
        &[("to", "cancelled"), ("version", v.as_str()), ("reason", "Merchant đổi ý")],
    )
    .await;
    assert_eq!(state_of(&app, id).0, "cancelled");
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains("Merchant đổi ý"));
    let audit: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::audit_log;
            audit_log::table
                .filter(audit_log::entity_type.eq("request"))
                .filter(audit_log::entity_id.eq(id.to_string()))
                .count()
                .get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(audit, 4, "open, assign, accept, cancel");
    // The acceptance mail went through the outbox (beside the leader's assignment notice).
    let queued: Vec<String> = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_outbox;
            mail_outbox::table.order(mail_outbox::id.asc()).select(mail_outbox::subject).load(c)
        })
        .unwrap_or_default();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued[0].starts_with("[hubgate] Bạn được giao yêu cầu"), "{queued:?}");
});

db_test!(a_new_partner_needs_no_code, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await;
    let bad = admin
        .post(
            "/admin/partners",
            &[("code", "shopee pay"), ("name", "ShopeePay"), ("kind", "payment"), ("mail_domains", "shopeepay.vn")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Mã đối tác chỉ gồm"));
    let ok = admin
        .post(
            "/admin/partners",
            &[
                ("code", "shopeepay"),
                ("name", "ShopeePay"),
                ("kind", "payment"),
                ("mail_domains", "shopeepay.vn"),
                ("virtual_brand", "SHOPEEPAY HUB"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(admin.get("/admin/partners").await.body.contains("SHOPEEPAY"));

    let raw = "From: Doi tac <hub@shopeepay.vn>\r\nTo: hub@ipos.vn\r\nSubject: Mo cong ket noi cho Lau Phan\r\nMessage-ID: <sp1@shopeepay.vn>\r\nDate: Mon, 9 Nov 2026 09:00:00 +0700\r\n\r\nDe nghi mo cong ket noi HUB.\r\n";
    let cfg = app.state.config.mail.clone();
    let r =
        app.with_conn(|c| service::ingest(c, &cfg, raw.as_bytes(), "test", None)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.partner.as_deref(), Some("SHOPEEPAY"));
    assert_eq!(r.kind.as_deref(), Some("connection_request"));

    // Open it and see it on the dashboard.
    let sale = app.login("sale@ipos.vn").await;
    let mail_id = r.id.unwrap_or(-1).to_string();
    let pid: i64 = crate::support::partner_id(&app, "SHOPEEPAY");
    let pid = pid.to_string();
    let created = sale
        .post(
            "/requests",
            &[
                ("partner_id", pid.as_str()),
                ("mail_id", mail_id.as_str()),
                ("merchant_name", "Lẩu Phan"),
                ("point_name", "Lẩu Phan Q1"),
            ],
        )
        .await;
    assert_eq!(created.status, 303);
    let dash = sale.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("<th>SHOPEEPAY</th>"));
    assert!(dash.body.contains("<svg"));
    let audited: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::audit_log;
            audit_log::table.filter(audit_log::entity_type.eq("partner")).count().get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(audited, 1);

    // Customers: the company list for PYCs.
    assert_eq!(
        sale.post("/customers", &[("name", "Công ty TNHH ShopeePay"), ("tax_code", "0312345678")]).await.status,
        303
    );
    assert!(sale.get("/customers?q=shopee").await.body.contains("Công ty TNHH ShopeePay"));
    assert!(!sale.get("/customers?q=momo").await.body.contains("ShopeePay"));
});

// Two people open a request from the same partner mail at the same moment: one request
// per mail, the other person told which (on PostgreSQL a check-then-update let both in).
db_test!(a_mail_opened_twice_at_once_makes_one_request, |app| {
    let sale = hubgate::audit::Actor::user(app.create_user("sale@ipos.vn", &[Role::Sale]).id, "sale@ipos.vn");
    let mut mails = Vec::new();
    for prefix in ["a01", "b01", "c01", "d01"] {
        let id = crate::support::ingest_corpus(&app, prefix);
        assert!(id > 0, "{prefix} stored");
        let partner: Option<i64> = app
            .with_conn(|c| mail_messages::table.find(id).select(mail_messages::partner_id).first(c))
            .unwrap_or_else(|e| panic!("{e}"));
        mails.push((id, partner.unwrap_or_else(|| panic!("{prefix} has its partner"))));
    }
    for (round, (mail_id, partner_id)) in mails.into_iter().enumerate() {
        let outcomes = opened_at_once(&app, &sale, 2, |who| hubgate::hub::service::OpenRequest {
            partner_id,
            mail_id: Some(mail_id),
            merchant_name: format!("Nhà hàng Vòng {round}"),
            point_name: format!("Chi nhánh {who}"),
            ..Default::default()
        });
        let opened: Vec<i64> = outcomes.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert_eq!(opened.len(), 1, "round {round}: {outcomes:?}");
        let refused = outcomes.iter().find_map(|r| r.as_ref().err()).map(|e| format!("{e:?}")).unwrap_or_default();
        assert!(refused.contains(&format!("#{}", opened[0])), "the other is told which request: {refused}");
    }
    let n: i64 = app.with_conn(|c| requests::table.count().get_result(c)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 4, "one request per mail");
    // Nor did the loser leave a merchant behind: its transaction rolled back whole.
    let points: i64 =
        app.with_conn(|c| hubgate::db::schema::points::table.count().get_result(c)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(points, 4);
});

db_test!(the_same_new_merchant_opened_at_once_is_one_merchant, |app| {
    // Two partners' mails about the same new restaurant, opened by hand by four people
    // at the same moment: four requests, one merchant, one point (it was four of each).
    let sale = hubgate::audit::Actor::user(app.create_user("sale@ipos.vn", &[Role::Sale]).id, "sale@ipos.vn");
    let partner_id = crate::support::partner_id(&app, "MOMO");
    for round in 0..3 {
        let outcomes = opened_at_once(&app, &sale, 4, |_| hubgate::hub::service::OpenRequest {
            partner_id,
            merchant_name: format!("Bún Chả Hàng Mành {round}"),
            point_name: "Số 1 Hàng Mành".into(),
            ..Default::default()
        });
        assert!(outcomes.iter().all(Result::is_ok), "round {round}: {outcomes:?}");
    }
    let count = |t: &str| -> i64 {
        app.with_conn(|c| {
            use hubgate::db::schema::{merchants, points};
            match t {
                "merchants" => merchants::table.count().get_result(c),
                "points" => points::table.count().get_result(c),
                _ => requests::table.count().get_result(c),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!((count("requests"), count("merchants"), count("points")), (12, 3, 3));
});

/// `people` requests opened by `sale` at the same moment (threads released together),
/// the `who`-th with `input(who)`; their outcomes in order.
fn opened_at_once(
    app: &crate::support::TestApp,
    sale: &hubgate::audit::Actor,
    people: usize,
    input: impl Fn(usize) -> hubgate::hub::service::OpenRequest + Sync,
) -> Vec<Result<i64, hubgate::error::AppError>> {
    let barrier = std::sync::Barrier::new(people);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..people)
            .map(|who| {
                let (barrier, pool, input) = (&barrier, app.state.pool.clone(), &input);
                s.spawn(move || {
                    let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
                    let form = input(who);
                    barrier.wait();
                    hubgate::hub::service::open_request(&mut conn, sale, &form)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("thread panicked"))).collect()
    })
}

/// The timeline of a request page: (tag, who, text) per entry, in page order.
fn timeline_entries(body: &str) -> Vec<(String, String, String)> {
    crate::support::between(body, "<ol class=\"timeline\">", "</ol>")
        .split("<li>")
        .skip(1)
        .map(|li| {
            let tag = li.split("<span class=\"tag\">").nth(1).and_then(|s| s.split("</span>").next()).unwrap_or("");
            let who = li.split("<b>").nth(1).and_then(|s| s.split("</b>").next()).unwrap_or("");
            let text = li.split("</b>:").nth(1).map(crate::support::text_of).unwrap_or_default();
            (tag.to_string(), who.to_string(), text)
        })
        .collect()
}

/// A request for `merchant` opened by hand through the form; its id.
async fn opened_by_hand(sale: &crate::support::Browser, partner: i64, merchant: &str) -> i64 {
    let pid = partner.to_string();
    let r = sale
        .post("/requests", &[("partner_id", pid.as_str()), ("merchant_name", merchant), ("point_name", merchant)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    r.location.as_deref().and_then(|l| l.strip_prefix("/requests/")).and_then(|s| s.parse().ok()).unwrap_or(-1)
}

db_test!(rejecting_at_b1_needs_a_reason_and_closes_the_request, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let sale = app.login("sale@ipos.vn").await;
    let vnpay = crate::support::partner_id(&app, "VNPAY");
    let id = opened_by_hand(&sale, vnpay, "Bánh Cuốn Gia An").await;
    let kept = opened_by_hand(&sale, vnpay, "Chè Bưởi Cô Ba").await;
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains("name=\"to\" value=\"rejected\""), "B1 offers “Từ chối”");
    let v = state_of(&app, id).1.to_string();

    // A technician may not; nor may anyone without a reason.
    let tech = app.login("kythuat@ipos.vn").await;
    let r =
        tech.post(&format!("/requests/{id}/transition"), &[("to", "rejected"), ("version", &v), ("reason", "x")]).await;
    assert_eq!(r.status, 403);
    let r =
        sale.post(&format!("/requests/{id}/transition"), &[("to", "rejected"), ("version", &v), ("reason", " ")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(crate::support::flashes(&sale.get(&format!("/requests/{id}")).await, "error"), ["Vui lòng ghi lý do."]);
    assert_eq!(state_of(&app, id).0, "received");

    let why = "Merchant chưa ký hợp đồng với VNPAY";
    let r =
        sale.post(&format!("/requests/{id}/transition"), &[("to", "rejected"), ("version", &v), ("reason", why)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(state_of(&app, id).0, "rejected");
    let page = sale.get(&format!("/requests/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "success"), ["Đã chuyển yêu cầu sang “Từ chối”."]);
    assert!(page.body.contains("<span class=\"badge badge-state\">Từ chối</span>"), "{}", page.body);
    assert!(page.body.contains(&format!("Lý do: {why}")));
    assert!(!page.body.contains("Từ chối hoặc hủy yêu cầu"), "a closed request offers no more moves");
    assert!(!page.body.contains(&format!("action=\"/requests/{id}/assign\"")), "nor a new assignee");
    let last = timeline_entries(&page.body).pop().unwrap_or_default();
    assert_eq!(last, ("Trạng thái".into(), "sale@ipos.vn".into(), format!("Chuyển sang “Từ chối”: {why}")));
    let audit = crate::support::audit_trail(&app, "request", id);
    let (action, before, after) = audit.last().cloned().unwrap_or_default();
    assert_eq!(action, "transition");
    assert!(before.contains("\"received\"") && after.contains("\"rejected\"") && after.contains(why), "{after}");

    // Closed for good: neither rejected again nor cancelled; open lists leave it out.
    let v = state_of(&app, id).1.to_string();
    sale.post(&format!("/requests/{id}/transition"), &[("to", "cancelled"), ("version", &v), ("reason", "x")]).await;
    assert_eq!(state_of(&app, id).0, "rejected");
    let open = sale.get("/requests?state=open").await;
    assert_eq!(crate::support::linked_ids(&open.body, "/requests/"), [kept]);
    let rejected = sale.get("/requests?state=rejected").await;
    assert_eq!(crate::support::linked_ids(&rejected.body, "/requests/"), [id]);
    // A request past B1 cannot be rejected, only cancelled.
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    let _ = leader;
    let lb = app.login("leader@ipos.vn").await;
    lb.post(&format!("/requests/{kept}/confirmations"), &[("kind", "merchant"), ("reason", "gọi điện")]).await;
    let v = state_of(&app, kept).1.to_string();
    let ok = sale
        .post(
            &format!("/requests/{kept}/accept"),
            &[("version", &v), ("to", "hub@vnpay.vn"), ("subject", "OK"), ("body", "Đồng ý")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let v = state_of(&app, kept).1.to_string();
    sale.post(&format!("/requests/{kept}/transition"), &[("to", "rejected"), ("version", &v), ("reason", "muộn")])
        .await;
    assert_eq!(state_of(&app, kept).0, "accepted");
    assert_eq!(
        crate::support::flashes(&sale.get(&format!("/requests/{kept}")).await, "error"),
        ["Không thể chuyển từ “Đã chấp nhận” sang “Từ chối”."]
    );
});

db_test!(comments_and_internal_notes_go_on_the_timeline, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let sale = app.login("sale@ipos.vn").await;
    let id = opened_by_hand(&sale, crate::support::partner_id(&app, "MOMO"), "Bún Bò Gánh").await;
    let other = opened_by_hand(&sale, crate::support::partner_id(&app, "MOMO"), "Xôi Yến").await;

    let r = sale.post(&format!("/requests/{id}/comments"), &[("body", "  Đã gọi chị Hoa, hẹn thứ Hai.  ")]).await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some(format!("/requests/{id}").as_str())));
    // Any staff member may write, a technician included; the box makes it internal.
    let tech = app.login("kythuat@ipos.vn").await;
    let r = tech
        .post(&format!("/requests/{id}/comments"), &[("body", "Máy POS cũ, cần <b>nâng cấp</b>"), ("internal", "1")])
        .await;
    assert_eq!(r.status, 303);
    let page = sale.get(&format!("/requests/{id}")).await;
    let entries = timeline_entries(&page.body);
    let mine: Vec<_> = entries.iter().filter(|e| e.0 != "Trạng thái" && e.0 != "Sự kiện").cloned().collect();
    assert_eq!(
        mine,
        [
            ("Bình luận".to_string(), "sale@ipos.vn".to_string(), "Đã gọi chị Hoa, hẹn thứ Hai.".to_string()),
            // Shown as typed, as text: escaped, never markup.
            (
                "Ghi chú nội bộ".into(),
                "kythuat@ipos.vn".into(),
                "Máy POS cũ, cần &#60;b&#62;nâng cấp&#60;/b&#62;".into()
            ),
        ],
        "{entries:?}"
    );
    assert!(timeline_entries(&sale.get(&format!("/requests/{other}")).await.body).iter().all(|e| e.0 != "Bình luận"));
    let internal: Vec<String> = crate::support::audit_trail(&app, "request", id)
        .into_iter()
        .filter(|a| a.0 == "comment")
        .map(|a| a.2)
        .collect();
    assert_eq!(internal, ["{\"internal\":false}", "{\"internal\":true}"]);
    // Nothing is mailed for either.
    let queued: i64 = app
        .with_conn(|c| hubgate::db::schema::mail_outbox::table.count().get_result(c))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued, 0);

    // An empty one is refused with the reason; one on no request is a 404.
    sale.post(&format!("/requests/{id}/comments"), &[("body", " \n ")]).await;
    assert_eq!(
        crate::support::flashes(&sale.get(&format!("/requests/{id}")).await, "error"),
        ["Nội dung bình luận trống."]
    );
    assert_eq!(sale.post("/requests/987654/comments", &[("body", "x")]).await.status, 404);
});

db_test!(a_wrong_confirmation_is_revoked_and_kept_in_history, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let sale = app.login("sale@ipos.vn").await;
    let leader = app.login("leader@ipos.vn").await;
    let giftpop = crate::support::partner_id(&app, "GIFTPOP");
    let id = opened_by_hand(&sale, giftpop, "Gà Nướng Ò Ó O").await;
    let other = opened_by_hand(&sale, giftpop, "Bò Né 3 Ngon").await;
    for rid in [id, other] {
        let r = leader
            .post(&format!("/requests/{rid}/confirmations"), &[("kind", "merchant"), ("reason", "Chủ quán gọi điện")])
            .await;
        assert_eq!(r.status, 303);
    }
    let confirmation = |rid: i64| -> i64 {
        app.with_conn(|c| {
            use hubgate::db::schema::confirmations;
            confirmations::table.filter(confirmations::request_id.eq(rid)).select(confirmations::id).first(c)
        })
        .unwrap_or(-1)
    };
    let (cid, other_cid) = (confirmation(id), confirmation(other));
    // A MoMo request confirmed by nobody misses both; it and the others in the list.
    let momo = opened_by_hand(&sale, crate::support::partner_id(&app, "MOMO"), "Phở Gia Truyền Bát Đàn").await;
    let list = sale.get("/requests").await.body;
    let row = |body: &str, rid: i64| crate::support::list_row(body, "/requests/", rid).to_string();
    assert!(row(&list, id).contains("Gà Nướng Ò Ó O") && !row(&list, id).contains("Chưa có"), "{list}");
    assert!(row(&list, other).contains("Bò Né 3 Ngon") && !row(&list, other).contains("Chưa có"));
    let both = row(&list, momo);
    assert!(
        both.contains("Phở Gia Truyền Bát Đàn")
            && both.contains("Chưa có xác nhận của merchant.")
            && both.contains("Chưa có xác nhận của leader MOMO"),
        "{both}"
    );
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains(&format!("href=\"/requests/{id}/accept\"")), "confirmed: B2 is offered");
    assert!(page.body.contains(&format!("action=\"/requests/{id}/confirmations/{cid}/revoke\"")));

    // A technician may not; a confirmation of another request is not this one's.
    assert_eq!(
        app.login("kythuat@ipos.vn")
            .await
            .post(&format!("/requests/{id}/confirmations/{cid}/revoke"), &[])
            .await
            .status,
        403
    );
    assert_eq!(sale.post(&format!("/requests/{id}/confirmations/{other_cid}/revoke"), &[]).await.status, 404);

    let r = sale.post(&format!("/requests/{id}/confirmations/{cid}/revoke"), &[]).await;
    assert_eq!(r.status, 303);
    let page = sale.get(&format!("/requests/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "success"), ["Đã gỡ xác nhận."]);
    assert!(
        page.body.contains("<tr class=\"revoked\">")
            && page.body.contains("<span class=\"badge badge-off\">đã gỡ</span>")
    );
    assert!(page.body.contains("Chủ quán gọi điện"), "kept in the history");
    assert!(page.body.contains("<li>Chưa có xác nhận của merchant.</li>"), "missing again: {}", page.body);
    let list = sale.get("/requests").await.body;
    assert!(row(&list, id).contains("Chưa có xác nhận của merchant."), "the list says so too: {list}");
    assert!(!row(&list, other).contains("Chưa có"), "the other request's stays");
    assert!(!page.body.contains(&format!("href=\"/requests/{id}/accept\"")), "B2 is no longer offered");
    assert!(!page.body.contains(&format!("/confirmations/{cid}/revoke")), "nothing left to revoke");
    assert_eq!(
        timeline_entries(&page.body).last().map(|e| e.2.clone()).unwrap_or_default(),
        "Gỡ một xác nhận không đúng"
    );
    let v = state_of(&app, id).1.to_string();
    let refused = sale
        .post(
            &format!("/requests/{id}/accept"),
            &[("version", &v), ("to", "ops@giftpop.vn"), ("subject", "OK"), ("body", "Đồng ý")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Chưa có xác nhận của merchant."));
    let audit = crate::support::audit_trail(&app, "confirmation", cid);
    assert_eq!(audit.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["create_manual", "revoke"]);
    // Twice is refused with the reason; the other request's stays.
    sale.post(&format!("/requests/{id}/confirmations/{cid}/revoke"), &[]).await;
    assert_eq!(
        crate::support::flashes(&sale.get(&format!("/requests/{id}")).await, "error"),
        ["Xác nhận này đã được gỡ."]
    );
    assert!(sale.get(&format!("/requests/{other}")).await.body.contains(&format!("href=\"/requests/{other}/accept\"")));

    // Once accepted, a confirmation stays.
    let v = state_of(&app, other).1.to_string();
    let ok = sale
        .post(
            &format!("/requests/{other}/accept"),
            &[("version", &v), ("to", "ops@giftpop.vn"), ("subject", "OK"), ("body", "Đồng ý")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    sale.post(&format!("/requests/{other}/confirmations/{other_cid}/revoke"), &[]).await;
    assert_eq!(
        crate::support::flashes(&sale.get(&format!("/requests/{other}")).await, "error"),
        ["Yêu cầu đã được chấp nhận; không gỡ xác nhận được nữa."]
    );
    assert_eq!(crate::support::audit_trail(&app, "confirmation", other_cid).len(), 1);
});

db_test!(a_mail_is_attached_to_a_request_opened_by_hand, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let momo = crate::support::partner_id(&app, "MOMO");
    let id = opened_by_hand(&sale, momo, "Phở Thìn Lò Đúc").await;
    let other = opened_by_hand(&sale, momo, "Bún Chả Đắc Kim").await;
    let mail = crate::support::ingest_corpus(&app, "a01");
    // The merchant's confirmation arrived in the same conversation before anyone attached it.
    assert!(mail > 0 && crate::support::ingest_corpus(&app, "a02") > 0);
    assert!(sale.get(&format!("/requests/{id}")).await.body.contains("<li>Chưa có xác nhận của merchant.</li>"));
    let page = sale.get(&format!("/mail/{mail}")).await;
    assert!(page.body.contains("action=\"/requests/attach-mail\""), "an unattached mail offers the form");
    let m = mail.to_string();

    for (typed, error) in [
        ("mười hai", "Vui lòng nhập số yêu cầu, ví dụ 12.".to_string()),
        ("#987654", "Không có yêu cầu #987654.".to_string()),
    ] {
        let r = sale.post("/requests/attach-mail", &[("mail_id", m.as_str()), ("request_id", typed)]).await;
        assert_eq!((r.status, r.location.as_deref()), (303, Some(format!("/mail/{mail}").as_str())));
        assert_eq!(crate::support::flashes(&sale.get(&format!("/mail/{mail}")).await, "error"), [error]);
    }
    let typed = format!(" #{id} ");
    let r = sale.post("/requests/attach-mail", &[("mail_id", m.as_str()), ("request_id", typed.as_str())]).await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some(format!("/requests/{id}").as_str())));
    let page = sale.get(&format!("/requests/{id}")).await;
    assert_eq!(crate::support::flashes(&page, "success"), [format!("Đã gắn thư vào yêu cầu #{id}.")]);
    assert!(page.body.contains("Xác nhận của merchant qua thư của lan@phothin.vn"), "its confirmation counts");
    let mails: Vec<(String, String)> =
        timeline_entries(&page.body).into_iter().filter(|e| e.0 == "Thư đến").map(|e| (e.1, e.2)).collect();
    assert_eq!(
        mails,
        [
            ("hub@momo.vn".to_string(), "[MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc – Yêu cầu mở cổng".to_string()),
            (
                "lan@phothin.vn".into(),
                "Re: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc – Xác nhận của merchant".into()
            ),
        ],
        "the whole conversation joins the timeline"
    );
    assert!(page.body.contains(&format!("<a href=\"/mail/{mail}\">")), "the timeline links the mail");
    assert!(sale.get(&format!("/mail/{mail}")).await.body.contains(&format!("href=\"/requests/{id}\"")));
    let audit = crate::support::audit_trail(&app, "request", id);
    assert_eq!(
        audit.last().map(|a| (a.0.as_str(), a.2.as_str())),
        Some(("attach_mail", format!("{{\"mail_id\":{mail}}}").as_str()))
    );

    // Not twice, not to another request; later mail of the conversation follows it.
    for (rid, error) in [
        (id, "Thư này đã gắn với yêu cầu này.".to_string()),
        (other, format!("Luồng thư này đã gắn với yêu cầu #{id}.")),
    ] {
        let rid = rid.to_string();
        sale.post("/requests/attach-mail", &[("mail_id", m.as_str()), ("request_id", rid.as_str())]).await;
        assert_eq!(crate::support::flashes(&sale.get(&format!("/mail/{mail}")).await, "error"), [error]);
    }
    assert!(timeline_entries(&sale.get(&format!("/requests/{other}")).await.body).iter().all(|e| e.0 != "Thư đến"));
    crate::support::ingest_corpus(&app, "a03");
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(page.body.contains("Xác nhận của leader đối tác qua thư của leader@momo.vn"), "{}", page.body);
});

db_test!(dashboard_counts_open_requests_by_step_and_partner, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    let actor = hubgate::audit::Actor::user(sale.id, &sale.email);
    let lead = hubgate::audit::Actor::user(leader.id, &leader.email);
    let (momo, vnpay) = (crate::support::partner_id(&app, "MOMO"), crate::support::partner_id(&app, "VNPAY"));
    let open = |partner_id: i64, name: &str| {
        let input = hubgate::hub::service::OpenRequest {
            partner_id,
            merchant_name: name.into(),
            point_name: name.into(),
            ..Default::default()
        };
        app.with_conn(|c| hubgate::hub::service::open_request(c, &actor, &input)).unwrap_or_else(|e| panic!("{e:?}"))
    };
    let close = |id: i64, to: hubgate::hub::state::State| {
        let v = state_of(&app, id).1;
        app.with_conn(|c| hubgate::hub::service::transition(c, &actor, id, v, to, "đóng"))
            .unwrap_or_else(|e| panic!("{e:?}"));
    };
    let (m1, _m2) = (open(momo, "Cơm Niêu Thiên Lý"), open(momo, "Lẩu Cá Kèo Bà Huyện"));
    let v1 = open(vnpay, "Bánh Canh Ghẹ");
    let v2 = open(vnpay, "Ốc Đào");
    close(open(momo, "Bún Mắm Cô Ba"), hubgate::hub::state::State::Cancelled);
    close(open(vnpay, "Hủ Tiếu Mực"), hubgate::hub::state::State::Rejected);
    app.with_conn(|c| {
        hubgate::hub::service::manual_confirmation(c, &lead, v2, "merchant", "gọi điện")?;
        let mut d = hubgate::hub::service::acceptance_draft(c, v2, "Sale")?;
        d.to = "hub@vnpay.vn".into();
        let v = hubgate::hub::models::request(c, v2)?.version;
        hubgate::hub::service::accept(c, &app.state.config.outbound, &actor, v2, v, &d)
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    // m1 has waited 4 days, v1 2 days.
    for (id, days) in [(m1, 4), (v1, 2)] {
        app.with_conn(|c| {
            diesel::update(requests::table.find(id))
                .set(requests::state_since.eq(hubgate::db::now() - chrono::Duration::days(days)))
                .execute(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    let dash = app.login("sale@ipos.vn").await.get("/dashboard").await;
    let head = crate::support::between(&dash.body, "<thead>", "</thead>");
    let columns: Vec<String> = head.split("<th>").skip(1).map(crate::support::text_of).collect();
    let col = |code: &str| columns.iter().position(|c| c == code).unwrap_or_else(|| panic!("{code}: {columns:?}"));
    let rows = crate::support::table_rows(&dash.body);
    let row = |label: &str| -> Vec<String> {
        rows.iter().find(|r| r[0].ends_with(label)).cloned().unwrap_or_else(|| panic!("no row {label}: {rows:?}"))
    };
    let received = row("Đã nhận yêu cầu");
    assert_eq!((received[col("MOMO")].as_str(), received[col("VNPAY")].as_str()), ("2", "1"), "{received:?}");
    assert_eq!(received[col("GIFTPOP")], "0");
    assert_eq!(received[columns.len() - 2..], ["3", "4 ngày"], "total and the longest wait: {received:?}");
    let accepted = row("Đã chấp nhận");
    assert_eq!((accepted[col("MOMO")].as_str(), accepted[col("VNPAY")].as_str()), ("0", "1"));
    assert_eq!(accepted[columns.len() - 2], "1");
    assert_eq!(row("Đang triển khai")[columns.len() - 2..], ["0", ""]);
    for closed in ["Từ chối", "Đã hủy", "Đã xuất hóa đơn 0 đ"] {
        assert!(rows.iter().all(|r| !r[0].ends_with(closed)), "closed requests are not open work: {rows:?}");
    }
    // The chart says the same totals.
    assert!(dash.body.contains(">3</text>") && dash.body.contains(">1</text>"), "{}", dash.body);
    assert!(dash.body.contains("href=\"/requests?state=received\""), "each step leads to its list");
});

db_test!(kept_request_counts_follow_every_change, |app| {
    use hubgate::db::schema::{request_counts, request_events, request_points};
    use hubgate::hub::state::State;
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let actor = hubgate::audit::Actor::user(sale.id, &sale.email);
    let (momo, vnpay) = (crate::support::partner_id(&app, "MOMO"), crate::support::partner_id(&app, "VNPAY"));
    let open = |partner_id: i64, name: &str| {
        let input = hubgate::hub::service::OpenRequest {
            partner_id,
            merchant_name: name.into(),
            point_name: name.into(),
            ..Default::default()
        };
        app.with_conn(|c| hubgate::hub::service::open_request(c, &actor, &input)).unwrap_or_else(|e| panic!("{e:?}"))
    };
    let ids: Vec<i64> = ["Bò Kho Cô Mai", "Chè Thái Ý Phương", "Bánh Mì Huỳnh Hoa", "Xôi Gà Bà Tám"]
        .iter()
        .enumerate()
        .map(|(i, name)| open(if i % 2 == 0 { momo } else { vnpay }, name))
        .collect();
    let v = state_of(&app, ids[0]).1;
    app.with_conn(|c| hubgate::hub::service::transition(c, &actor, ids[0], v, State::Cancelled, "khách hủy"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    // Writes outside the service count too: a partner fixed by hand and a row removed.
    app.with_conn(|c| {
        diesel::update(requests::table.find(ids[1])).set(requests::partner_id.eq(momo)).execute(c)?;
        diesel::delete(request_events::table.filter(request_events::request_id.eq(ids[3]))).execute(c)?;
        diesel::delete(request_points::table.filter(request_points::request_id.eq(ids[3]))).execute(c)?;
        diesel::delete(requests::table.find(ids[3])).execute(c)
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let (kept, counted) = app
        .with_conn(|c| {
            let kept: Vec<(String, i64, i64)> = request_counts::table
                .filter(request_counts::n.ne(0))
                .order((request_counts::state, request_counts::partner_id))
                .select((request_counts::state, request_counts::partner_id, request_counts::n))
                .load(c)?;
            let counted: Vec<(String, i64, i64)> = requests::table
                .group_by((requests::state, requests::partner_id))
                .order((requests::state, requests::partner_id))
                .select((requests::state, requests::partner_id, diesel::dsl::count_star()))
                .load(c)?;
            Ok::<_, diesel::result::Error>((kept, counted))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept, counted);
    assert_eq!(
        kept,
        [("cancelled".to_string(), momo, 1), ("received".to_string(), momo, 2)],
        "one cancelled, two waiting (one moved from VNPAY), one deleted"
    );

    // The list's total reads them when only states and a partner filter it.
    let browser = app.login("sale@ipos.vn").await;
    for (query, total) in [("", 3), ("?state=received&partner=MOMO", 2), ("?partner=VNPAY", 0), ("?state=open", 2)] {
        let page = browser.get(&format!("/requests{query}")).await;
        assert!(page.body.contains(&format!("{total} yêu cầu · trang")), "{query}: {}", page.body);
    }
});

db_test!(an_admin_edits_a_partner, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let admin = app.login("admin@ipos.vn").await;
    let sale = app.login("sale@ipos.vn").await;
    let momo = crate::support::partner_id(&app, "MOMO");
    let id = opened_by_hand(&sale, momo, "Bánh Xèo Bà Dưỡng").await;
    assert!(sale.get(&format!("/requests/{id}")).await.body.contains("Chưa có xác nhận của leader MOMO"));
    assert_eq!(sale.get(&format!("/admin/partners/{momo}")).await.status, 403);

    let form = admin.get(&format!("/admin/partners/{momo}")).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"MOMO\"") && form.body.contains("momo.vn"), "prefilled: {}", form.body);
    let fields = |name: &'static str, domains: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("code", "momo"),
            ("name", name),
            ("kind", "payment"),
            ("mail_domains", domains),
            ("virtual_brand", "MOMO HUB"),
            ("virtual_point", "MoMo - Điểm ảo"),
        ]
    };
    let bad = admin.post(&format!("/admin/partners/{momo}"), &fields(" ", "momo.vn, momo-hub.vn")).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains("Vui lòng nhập tên đối tác.") && bad.body.contains("momo-hub.vn"),
        "the typed values are kept"
    );
    let saved =
        admin.post(&format!("/admin/partners/{momo}"), &fields("Ví MoMo (M_Service)", "momo.vn, momo-hub.vn")).await;
    assert_eq!((saved.status, saved.location.as_deref()), (303, Some("/admin/partners")));
    assert_eq!(crate::support::flashes(&admin.get("/admin/partners").await, "success"), ["Đã lưu đối tác MOMO."]);
    assert!(admin.get("/admin/partners").await.body.contains("Ví MoMo (M_Service)"));

    // What it changes: the leader's confirmation is no longer required, the new domain is MoMo's.
    let page = sale.get(&format!("/requests/{id}")).await;
    assert!(!page.body.contains("Chưa có xác nhận của leader"), "{}", page.body);
    assert!(page.body.contains("Ví MoMo (M_Service)"));
    let raw = "From: Ho tro <hotro@momo-hub.vn>\r\nTo: hub@ipos.vn\r\nSubject: Mo cong ket noi cho Banh Xeo\r\nMessage-ID: <edit1@momo-hub.vn>\r\nDate: Mon, 9 Nov 2026 09:00:00 +0700\r\n\r\nDe nghi mo cong ket noi HUB.\r\n";
    let cfg = app.state.config.mail.clone();
    let r =
        app.with_conn(|c| service::ingest(c, &cfg, raw.as_bytes(), "test", None)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.partner.as_deref(), Some("MOMO"));
    let audit = crate::support::audit_trail(&app, "partner", momo);
    assert_eq!(audit.len(), 1, "the refused form is not recorded: {audit:?}");
    let (action, before, after) = &audit[0];
    assert_eq!(action, "update");
    assert!(before.contains("Ví điện tử MoMo") && before.contains("\"leader_confirmation_required\":\"\""), "{before}");
    assert!(after.contains("Ví MoMo (M_Service)") && after.contains("momo-hub.vn"), "{after}");
    assert!(after.contains("\"leader_confirmation_required\":null"), "{after}");
    // A code already taken is refused.
    let mut taken = fields("Ví MoMo", "momo.vn");
    taken[0] = ("code", "VNPAY");
    let clash = admin.post(&format!("/admin/partners/{momo}"), &taken).await;
    assert_eq!(clash.status, 422);
    assert!(clash.body.contains("Mã VNPAY đã có."), "{}", clash.body);
});

db_test!(request_merchant_and_audit_lists_filter_and_page, |app| {
    use hubgate::hub::service::{OpenRequest, open_request, transition};
    let sale1 = app.create_user("sale1@ipos.vn", &[Role::Sale]);
    let sale2 = app.create_user("sale2@ipos.vn", &[Role::Sale]);
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let (vnpay, momo) = (crate::support::partner_id(&app, "VNPAY"), crate::support::partner_id(&app, "MOMO"));
    let open = |who: &hubgate::accounts::User, partner_id: i64, name: &str| {
        let input =
            OpenRequest { partner_id, merchant_name: name.into(), point_name: name.into(), ..Default::default() };
        app.with_conn(|c| open_request(c, &hubgate::audit::Actor::user(who.id, &who.email), &input))
            .unwrap_or_else(|e| panic!("{e:?}"))
    };
    // One more than a page of sale1's VNPAY requests, and sale2's MOMO ones (one cancelled).
    let many: Vec<i64> = (0..51).map(|n| open(&sale1, vnpay, &format!("Quán số {n:02}"))).collect();
    let pho = open(&sale2, momo, "Phở Gia Truyền Bát Đàn");
    let cancelled = open(&sale2, momo, "Bún Riêu Cua Đồng");
    let v = state_of(&app, cancelled).1;
    app.with_conn(|c| {
        transition(
            c,
            &hubgate::audit::Actor::user(sale2.id, &sale2.email),
            cancelled,
            v,
            hubgate::hub::state::State::Cancelled,
            "trùng",
        )
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let old = many[30];
    app.with_conn(|c| {
        diesel::update(requests::table.find(old))
            .set(requests::state_since.eq(hubgate::db::now() - chrono::Duration::days(10)))
            .execute(c)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut every: Vec<i64> = many.iter().copied().chain([pho, cancelled]).collect();
    every.sort();
    let b = app.login("sale2@ipos.vn").await;
    let sorted = |mut v: Vec<i64>| {
        v.sort();
        v
    };

    // Unfiltered: two pages of 50 and 3, every request once.
    let first = b.get("/requests").await;
    assert!(first.body.contains("53 yêu cầu · trang 1/2"), "{}", first.body);
    assert_eq!(crate::support::pager_link(&first, "‹ Trang trước"), None);
    let (ids, sizes) = crate::support::all_pages(&b, "/requests", "/requests/").await;
    assert_eq!(sizes, [50, 3]);
    assert_eq!(sorted(ids), every);
    let second = b.get("/requests?page=2").await;
    assert_eq!(crate::support::pager_link(&second, "‹ Trang trước").as_deref(), Some("/requests?page=1"));

    // The pager keeps the filters.
    let vn = b.get("/requests?partner=VNPAY").await;
    assert!(vn.body.contains("51 yêu cầu · trang 1/2"));
    assert_eq!(crate::support::pager_link(&vn, "Trang sau ›").as_deref(), Some("/requests?page=2&partner=VNPAY"));
    let (ids, sizes) = crate::support::all_pages(&b, "/requests?partner=VNPAY", "/requests/").await;
    assert_eq!((sizes, sorted(ids)), (vec![50, 1], sorted(many.clone())));
    for (query, expected) in [
        ("partner=MOMO", vec![pho, cancelled]),
        ("partner=MOMO&state=open", vec![pho]),
        ("state=cancelled", vec![cancelled]),
        ("state=received&partner=MOMO", vec![pho]),
        ("mine=1", vec![pho, cancelled]),
        ("mine=1&state=open", vec![pho]),
        ("older_days=5", vec![old]),
        ("older_days=5&partner=MOMO", vec![]),
        ("q=bat%20dan", vec![pho]),
    ] {
        let page = b.get(&format!("/requests?{query}")).await;
        assert_eq!(sorted(crate::support::linked_ids(&page.body, "/requests/")), sorted(expected.clone()), "{query}");
        assert!(page.body.contains(&format!("{} yêu cầu · trang 1/1", expected.len())), "{query}");
    }
    let theirs = app.login("sale1@ipos.vn").await.get("/requests?mine=1").await;
    assert!(
        theirs.body.contains("51 yêu cầu") && !crate::support::linked_ids(&theirs.body, "/requests/").contains(&pho)
    );

    // Merchants: 53 by name, two pages; the search folds diacritics and excludes the rest.
    let (ids, sizes) = crate::support::all_pages(&b, "/merchants", "/merchants/").await;
    assert_eq!((sizes, ids.len()), (vec![50, 3], 53));
    let found = b.get("/merchants?q=QUAN%20SO%200").await;
    assert!(found.body.contains("10 merchant · trang 1/1"), "{}", found.body);
    let rows = crate::support::table_rows(&found.body);
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        (0..10).map(|n| format!("Quán số {n:02}")).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|r| r[3] == "1"), "one point each: {rows:?}");
    let pho_page = b.get("/merchants?q=ph%E1%BB%9F%20gia").await;
    assert_eq!(crate::support::table_rows(&pho_page.body).len(), 1);

    // The audit log pages its filtered entries the same way.
    let admin = app.login("admin@ipos.vn").await;
    let log = admin.get("/admin/audit?entity=request").await;
    assert!(log.body.contains("54 bản ghi · trang 1/2"), "53 openings and a cancellation: {}", log.body);
    assert_eq!(crate::support::pager_link(&log, "Trang sau ›").as_deref(), Some("/admin/audit?page=2&entity=request"));
    let page2 = admin.get("/admin/audit?page=2&entity=request").await;
    assert_eq!(crate::support::table_rows(&page2.body).len(), 4);
});

db_test!(the_merchant_page_shows_its_own_points, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    let sale = app.login("sale@ipos.vn").await;
    let giftpop = crate::support::partner_id(&app, "GIFTPOP").to_string();
    let r = sale
        .post(
            "/requests",
            &[
                ("partner_id", giftpop.as_str()),
                ("merchant_name", "The Coffee House"),
                ("merchant_contact", "Anh Minh"),
                ("merchant_phone", "0909 111 222"),
                ("point_name", "TCH Nguyễn Huệ"),
                ("point_address", "86 Nguyễn Huệ, Quận 1"),
                ("point_contact", "Chị Thu"),
                ("point_phone", "0909 333 444"),
                ("extra_points", "TCH Lê Lợi – 1 Lê Lợi, Quận 1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    opened_by_hand(&sale, crate::support::partner_id(&app, "MOMO"), "Highlands Coffee").await;
    let merchant_of = |name: &str| -> i64 {
        app.with_conn(|c| {
            use hubgate::db::schema::merchants;
            merchants::table.filter(merchants::name.eq(name)).select(merchants::id).first(c)
        })
        .unwrap_or(-1)
    };
    let (tch, highlands) = (merchant_of("The Coffee House"), merchant_of("Highlands Coffee"));
    let list = sale.get("/merchants").await;
    assert_eq!(crate::support::linked_ids(&list.body, "/merchants/"), [highlands, tch], "by name");
    let rows = crate::support::table_rows(&list.body);
    assert_eq!(rows[1], ["The Coffee House", "Anh Minh", "0909 111 222", "2"]);

    let page = sale.get(&format!("/merchants/{tch}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>The Coffee House</h1>") && page.body.contains("Liên hệ: Anh Minh 0909 111 222"));
    let points = crate::support::table_rows(&page.body);
    let names: Vec<(&str, &str)> = points.iter().map(|p| (p[0].as_str(), p[1].as_str())).collect();
    assert_eq!(names, [("TCH Lê Lợi", "1 Lê Lợi, Quận 1"), ("TCH Nguyễn Huệ", "86 Nguyễn Huệ, Quận 1")]);
    assert_eq!(points[1][2], "Chị Thu 0909 333 444");
    assert!(!page.body.contains("Highlands"), "another merchant's points are not here");
    assert!(page.body.contains(&format!("href=\"/merchants/{tch}/edit\"")) && page.body.contains("Chưa liên kết"));
    // A technician reads it without the desk's edit and link controls.
    let tech = app.login("kythuat@ipos.vn").await.get(&format!("/merchants/{tch}")).await;
    assert_eq!(tech.status, 200);
    assert!(tech.body.contains("TCH Nguyễn Huệ"));
    assert!(!tech.body.contains("/edit\"") && !tech.body.contains(&format!("action=\"/merchants/{tch}/business\"")));
    assert_eq!(sale.get("/merchants/987654").await.status, 404);
    // The request page leads to it.
    let rid = newest_request(&app) - 1;
    assert!(sale.get(&format!("/requests/{rid}")).await.body.contains(&format!("href=\"/merchants/{tch}\"")));
});

// The request page's badge and step bar, in every state: the step numbers and labels of
// the seed (B1…B6 then B8; the seed's B7 is a PYC step), the steps behind marked done and
// the current one marked, and the closing states named without a step.
db_test!(the_request_page_names_its_state_and_step, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let bar = [
        ("B1", "Đã nhận yêu cầu"),
        ("B2", "Đã chấp nhận"),
        ("B3", "Đã tạo PYC"),
        ("B4", "Đang triển khai"),
        ("B5", "Đã phản hồi đối tác"),
        ("B6", "Đã báo kế toán"),
        ("B8", "Đã xuất hóa đơn 0 đ"),
    ];
    let states = [
        ("received", "B1 · Đã nhận yêu cầu", Some(0)),
        ("accepted", "B2 · Đã chấp nhận", Some(1)),
        ("ticket", "B3 · Đã tạo PYC", Some(2)),
        ("deploying", "B4 · Đang triển khai", Some(3)),
        ("replied", "B5 · Đã phản hồi đối tác", Some(4)),
        ("reported", "B6 · Đã báo kế toán", Some(5)),
        ("invoiced", "B8 · Đã xuất hóa đơn 0 đ", Some(6)),
        ("rejected", "Từ chối", None),
        ("cancelled", "Đã hủy", None),
    ];
    for (i, (code, badge, current)) in states.into_iter().enumerate() {
        let id = seed_request(&app, "MOMO", &format!("Quán số {i}"), code);
        let page = sale.get(&format!("/requests/{id}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let inside = |open: &str, close: &str| {
            crate::support::between(&page.body, open, close).trim_start_matches(open).trim().to_string()
        };
        assert_eq!(inside("<span class=\"badge badge-state\">", "</span>"), badge, "the badge of a {code} request");
        let expected: String = bar
            .iter()
            .enumerate()
            .map(|(n, (step, label))| {
                let class = match current {
                    Some(c) if n < c => "done",
                    Some(c) if n == c => " current",
                    _ => "",
                };
                format!("<li class=\"{class}\"><b>{step}</b> {label}</li>")
            })
            .collect();
        assert_eq!(inside("<ol class=\"stepbar\">", "</ol>"), expected, "the step bar of a {code} request");
    }
});
