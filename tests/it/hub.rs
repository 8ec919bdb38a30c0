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
