//! What the desk's daily users need (issue 16): technicians assigned by person, "Việc
//! của tôi" per person, staff mail by each person's settings through a real SMTP
//! server, ageing and the morning digest, search, exports, editing reference data and
//! the sandboxed attachment preview.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use hubgate::accounts::{Role, User};
use hubgate::audit::Actor;
use hubgate::db::DbConn;
use hubgate::db::schema::{audit_log, mail_outbox, partners, pycs};
use hubgate::hub::service::{self as hub, OpenRequest};
use hubgate::pyc::{models as pyc_models, service as pyc};

use crate::support::TestApp;
use hubgate::worker::schedule;

/// A test on both databases whose app mails through the real test SMTP server (`$inbox`).
macro_rules! smtp_test {
    ($name:ident, |$app:ident, $inbox:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn run(backend: hubgate::db::Backend) {
                let (port, $inbox, _server) = crate::smtp::start(0).await;
                let Some($app) =
                    TestApp::start_with(backend, |c| c.outbound.smtp_url = Some(format!("smtp://127.0.0.1:{port}")))
                        .await
                else {
                    return;
                };
                $body
            }

            crate::on_both_backends!(run);
        }
    };
}

fn actor(u: &User) -> Actor {
    Actor::user(u.id, &u.email)
}

/// A request opened by `sale` for `merchant` – `point` at `partner`, still at B1.
fn open(c: &mut DbConn, sale: &User, partner: &str, merchant: &str, point: &str, phone: &str) -> i64 {
    let pid: i64 = partners::table.filter(partners::code.eq(partner)).select(partners::id).first(c).unwrap_or(-1);
    let input = OpenRequest {
        partner_id: pid,
        merchant_name: merchant.into(),
        merchant_phone: phone.into(),
        point_name: point.into(),
        point_address: format!("{point}, Quận 1"),
        ..Default::default()
    };
    hub::open_request(c, &actor(sale), &input).unwrap_or_else(|e| panic!("{e:?}"))
}

/// An accepted (B2) VNPAY request of `sale`.
fn accepted(c: &mut DbConn, app: &TestApp, sale: &User, leader: &User, merchant: &str) -> i64 {
    let rid = open(c, sale, "VNPAY", merchant, &format!("{merchant} – Điểm 1"), "");
    hub::manual_confirmation(c, &actor(leader), rid, "merchant", "gọi điện").unwrap_or_else(|e| panic!("{e:?}"));
    let mut draft = hub::acceptance_draft(c, rid, "Sale").unwrap_or_else(|e| panic!("{e:?}"));
    draft.to = "hub@vnpay.vn".into();
    let v = hubgate::hub::models::request(c, rid).map(|r| r.version).unwrap_or(0);
    hub::accept(c, &app.state.config.outbound, &actor(sale), rid, v, &draft).unwrap_or_else(|e| panic!("{e:?}"));
    rid
}

/// A draft PYC for an accepted request; returns (id, number).
fn draft(c: &mut DbConn, app: &TestApp, sale: &User, rid: i64) -> (i64, String) {
    let (fields, _) = pyc::draft_fields(c, rid).unwrap_or_else(|e| panic!("{e:?}"));
    let id = pyc::create(c, &app.state.config, &actor(sale), rid, &fields).unwrap_or_else(|e| panic!("{e:?}"));
    (id, pyc_models::pyc(c, id).map(|p| p.number).unwrap_or_default())
}

/// A draft PYC of a fresh accepted request of `merchant`.
fn new_draft(c: &mut DbConn, app: &TestApp, sale: &User, leader: &User, merchant: &str) -> (i64, String) {
    let rid = accepted(c, app, sale, leader, merchant);
    draft(c, app, sale, rid)
}

fn advance(c: &mut DbConn, app: &TestApp, who: &User, id: i64, to: &str) {
    let v = pyc_models::pyc(c, id).map(|p| p.version).unwrap_or(0);
    pyc::advance(
        c,
        &app.state.config,
        &actor(who),
        id,
        v,
        hubgate::pyc::PycState::from_code(to).unwrap_or_else(|| panic!("{to}")),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
}

fn assign_tech(c: &mut DbConn, app: &TestApp, who: &User, id: i64, tech: &User) {
    pyc::assign_technician(c, &app.state.config, &actor(who), id, Some(tech.id)).unwrap_or_else(|e| panic!("{e:?}"));
}

/// Subjects of the outbox mails to `to`.
fn subjects_to(app: &TestApp, to: &str) -> Vec<String> {
    app.with_conn(|c| {
        mail_outbox::table
            .filter(mail_outbox::to_addrs.eq(to))
            .order(mail_outbox::id.asc())
            .select(mail_outbox::subject)
            .load(c)
    })
    .unwrap_or_default()
}

/// Runs the real worker until `done` holds (30 s at most), then stops it.
pub async fn work_until(app: &TestApp, done: impl Fn() -> bool) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let opts = hubgate::worker::runner::WorkerOptions {
        name: "desk".into(),
        concurrency: 4,
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(20),
        job_timeout: Duration::from_secs(20),
        grace: Duration::from_secs(2),
    };
    let worker = tokio::spawn(hubgate::worker::runner::run(
        app.state.services.clone(),
        Arc::new(hubgate::app::registry(&app.state.config)),
        opts,
        rx,
    ));
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "the worker did not get there in 30 s");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let _ = stop.send(true);
    let _ = worker.await;
}

db_test!(my_work_is_per_person, |app| {
    let sale1 = app.create_user("sale1@ipos.vn", &[Role::Sale]);
    let sale2 = app.create_user("sale2@ipos.vn", &[Role::Sale]);
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    let tech1 = app.create_user("kt1@ipos.vn", &[Role::Technician]);
    let tech2 = app.create_user("kt2@ipos.vn", &[Role::Technician]);
    let (own, other, a, b, c_, d) = app.with_conn(|c| {
        let own = open(c, &sale1, "VNPAY", "Cơm Tấm Cali", "Cali – Nguyễn Trãi", "");
        let other = open(c, &sale2, "VNPAY", "Bún Bò Huế O Xuân", "O Xuân – Lê Lợi", "");
        let (a, na) = new_draft(c, &app, &sale1, &leader, "Phở Hùng");
        advance(c, &app, &leader, a, "reviewed");
        assign_tech(c, &app, &leader, a, &tech1);
        advance(c, &app, &sale1, a, "created");
        let (b, nb) = new_draft(c, &app, &sale1, &leader, "Lẩu Dê");
        advance(c, &app, &leader, b, "reviewed");
        assign_tech(c, &app, &leader, b, &tech2);
        advance(c, &app, &sale1, b, "created");
        let (_, nc) = new_draft(c, &app, &sale1, &leader, "Chè Thái");
        let (d, nd) = new_draft(c, &app, &sale1, &leader, "Gà Rán");
        advance(c, &app, &leader, d, "reviewed");
        (own, other, na, nb, nc, nd)
    });

    // Sales see the requests handed to them, not a colleague's.
    let page = app.login("sale1@ipos.vn").await.get("/my").await;
    assert!(page.body.contains(&format!("href=\"/requests/{own}\"")), "{}", page.body);
    assert!(!page.body.contains(&format!("href=\"/requests/{other}\"")));
    let page = app.login("sale2@ipos.vn").await.get("/my").await;
    assert!(page.body.contains(&format!("href=\"/requests/{other}\"")));
    assert!(!page.body.contains(&format!("href=\"/requests/{own}\"")));

    // A technician sees the PYC handed to them, not the one handed to another.
    let page = app.login("kt1@ipos.vn").await.get("/my").await;
    assert!(page.body.contains("PYC giao cho tôi") && page.body.contains(&a), "{}", page.body);
    assert!(!page.body.contains(&b), "another technician's PYC is not mine");
    let page = app.login("kt2@ipos.vn").await.get("/my").await;
    assert!(page.body.contains(&b) && !page.body.contains(&a));

    // The leader's section holds the drafts waiting for review (B7), not PYCs already
    // reviewed or created.
    let page = app.login("leader@ipos.vn").await.get("/my").await;
    assert!(page.body.contains("PYC nháp chờ xem lại (B7)") && page.body.contains(&c_), "{}", page.body);
    for done in [&d, &a, &b] {
        assert!(!page.body.contains(done.as_str()), "{done} is past review");
    }

    // Assigning by person through the page: a leader may, to a technician only.
    let leader_b = app.login("leader@ipos.vn").await;
    let (d_id, t1, s1) = (
        app.with_conn(|c| pycs::table.filter(pycs::number.eq(&d)).select(pycs::id).first::<i64>(c)).unwrap_or(-1),
        tech1.id.to_string(),
        sale1.id.to_string(),
    );
    let r = leader_b.post(&format!("/pyc/{d_id}/technician"), &[("technician_id", s1.as_str())]).await;
    assert_eq!(r.status, 303);
    assert!(leader_b.get(&format!("/pyc/{d_id}")).await.body.contains("Chỉ giao cho kỹ thuật viên đang hoạt động"));
    let tech_of = || app.with_conn(|c| pycs::table.find(d_id).select(pycs::technician_id).first::<Option<i64>>(c));
    assert_eq!(tech_of().ok().flatten(), None);
    assert_eq!(leader_b.post(&format!("/pyc/{d_id}/technician"), &[("technician_id", t1.as_str())]).await.status, 303);
    assert_eq!(tech_of().ok().flatten(), Some(tech1.id));
    let audited: i64 = app
        .with_conn(|c| {
            audit_log::table
                .filter(audit_log::action.eq("assign_technician"))
                .filter(audit_log::entity_id.eq(d_id.to_string()))
                .count()
                .get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(audited, 1);
    assert!(
        leader_b.get(&format!("/pyc/{d_id}")).await.body.contains("Kỹ thuật triển khai:</b> Người dùng kt1@ipos.vn")
    );
});

smtp_test!(staff_mail_follows_each_persons_settings, |app, inbox| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let leader1 = app.create_user("leader1@ipos.vn", &[Role::Leader]);
    app.create_user("leader2@ipos.vn", &[Role::Leader]);
    let tech1 = app.create_user("kt1@ipos.vn", &[Role::Technician]);
    let tech2 = app.create_user("kt2@ipos.vn", &[Role::Technician]);

    // leader2 wants no review mail; kt2 wants no mail at all. Settings are theirs.
    let l2 = app.login("leader2@ipos.vn").await;
    assert_eq!(l2.post("/account/settings", &[("on_assign", "1"), ("on_digest", "1")]).await.status, 303);
    let page = l2.get("/account/settings").await;
    assert!(page.body.contains("name=\"on_assign\" value=\"1\" checked"));
    assert!(!page.body.contains("name=\"on_review\" value=\"1\" checked"), "{}", page.body);
    assert_eq!(app.login("kt2@ipos.vn").await.post("/account/settings", &[]).await.status, 303);

    // A new draft asks the leaders for review (B7).
    let (p1, p2) = app.with_conn(|c| {
        let (p1, _) = new_draft(c, &app, &sale, &leader1, "Phở Thìn");
        let (p2, _) = new_draft(c, &app, &sale, &leader1, "Bánh Cuốn Thanh Vân");
        (p1, p2)
    });
    assert_eq!(subjects_to(&app, "leader1@ipos.vn").iter().filter(|s| s.contains("cần xem lại (B7)")).count(), 2);
    assert!(subjects_to(&app, "leader2@ipos.vn").is_empty(), "leader2 opted out of review mail");

    // Handing PYCs to technicians, through the page.
    let l1 = app.login("leader1@ipos.vn").await;
    for (p, t) in [(p1, &tech1), (p2, &tech2)] {
        let v = pyc_models::pyc(&mut app.conn(), p).map(|x| x.version).unwrap_or(0).to_string();
        assert_eq!(l1.post(&format!("/pyc/{p}/review"), &[("version", v.as_str())]).await.status, 303);
        let tid = t.id.to_string();
        assert_eq!(l1.post(&format!("/pyc/{p}/technician"), &[("technician_id", tid.as_str())]).await.status, 303);
    }
    assert!(subjects_to(&app, "kt1@ipos.vn").iter().any(|s| s.contains("Bạn được giao triển khai")));
    assert!(subjects_to(&app, "kt2@ipos.vn").is_empty(), "kt2 opted out");

    // B8 tells the assigned technician.
    let s = app.login("sale@ipos.vn").await;
    for p in [p1, p2] {
        let v = pyc_models::pyc(&mut app.conn(), p).map(|x| x.version).unwrap_or(0).to_string();
        assert_eq!(s.post(&format!("/pyc/{p}/create"), &[("version", v.as_str())]).await.status, 303);
    }
    assert!(subjects_to(&app, "kt1@ipos.vn").iter().any(|s| s.contains("đã tạo (B8)")));
    assert!(subjects_to(&app, "kt2@ipos.vn").is_empty());

    // A request handed to a salesperson mails them; nobody is mailed about their own move.
    let sale2 = app.create_user("sale2@ipos.vn", &[Role::Sale]);
    let rid = app.with_conn(|c| open(c, &sale, "VNPAY", "Trà Sữa Gõ Cửa", "Gõ Cửa – Hai Bà Trưng", ""));
    let sid = sale2.id.to_string();
    assert_eq!(l1.post(&format!("/requests/{rid}/assign"), &[("assignee_id", sid.as_str())]).await.status, 303);
    assert!(subjects_to(&app, "sale2@ipos.vn").iter().any(|s| s.contains(&format!("yêu cầu #{rid}"))));
    assert!(subjects_to(&app, "leader1@ipos.vn").iter().all(|s| !s.contains("Bạn được giao")));

    // They reach the real SMTP server, to the right people only.
    let expected = app.with_conn(|c| mail_outbox::table.count().get_result::<i64>(c)).unwrap_or(0) as usize;
    work_until(&app, || inbox.received().len() >= expected).await;
    let to: Vec<String> = inbox
        .received()
        .iter()
        .filter_map(|raw| mail_parser::MessageParser::default().parse(raw))
        .filter_map(|m| m.to().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string))
        .collect();
    assert!(to.iter().any(|a| a == "kt1@ipos.vn") && to.iter().any(|a| a == "sale2@ipos.vn"));
    assert!(!to.iter().any(|a| a == "kt2@ipos.vn" || a == "leader2@ipos.vn"), "{to:?}");
});

/// Ids of the request rows marked overdue on a list page.
fn overdue_ids(body: &str) -> Vec<i64> {
    body.split("<tr class=\"overdue\">")
        .skip(1)
        .filter_map(|part| {
            let start = part.find("href=\"/requests/")? + "href=\"/requests/".len();
            part[start..].split('"').next()?.parse().ok()
        })
        .collect()
}

/// Moves a request's time in its state back by `days`.
fn waited(app: &TestApp, id: i64, days: i64) {
    use hubgate::db::schema::requests;
    app.with_conn(|c| {
        diesel::update(requests::table.find(id))
            .set(requests::state_since.eq(hubgate::db::now() - chrono::Duration::days(days)))
            .execute(c)
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

db_test!(overdue_requests_stand_out_by_the_admins_thresholds, |app| {
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let (old, fresh, closed) = app.with_conn(|c| {
        let old = open(c, &sale, "VNPAY", "Phở Lý Quốc Sư", "Lý Quốc Sư – Hoàn Kiếm", "");
        let fresh = open(c, &sale, "VNPAY", "Bún Chả Hương Liên", "Hương Liên – Lê Văn Hưu", "");
        let closed = open(c, &sale, "VNPAY", "Bánh Mì Phượng", "Phượng – Hội An", "");
        let v = hubgate::hub::models::request(c, closed).map(|r| r.version).unwrap_or(0);
        hub::transition(c, &actor(&sale), closed, v, hubgate::hub::state::State::Cancelled, "Đối tác rút yêu cầu")
            .unwrap_or_else(|e| panic!("{e:?}"));
        (old, fresh, closed)
    });
    waited(&app, old, 5);
    waited(&app, closed, 40);
    let s = app.login("sale@ipos.vn").await;
    // The default for B1 is 2 days: five days is overdue, today is not, closed never is.
    assert_eq!(overdue_ids(&s.get("/requests").await.body), vec![old]);
    let only = s.get("/requests?overdue=1").await.body;
    assert!(only.contains(&format!("href=\"/requests/{old}\"")));
    for id in [fresh, closed] {
        assert!(!only.contains(&format!("href=\"/requests/{id}\"")), "#{id} is not overdue");
    }

    // The admin raises the B1 threshold: five days is fine now. Nonsense is refused.
    let admin = app.login("admin@ipos.vn").await;
    let bad = admin.post("/admin/ageing", &[("days_received", "mười")]).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("phải là số nguyên từ 1 đến 365") && bad.body.contains("value=\"mười\""));
    assert_eq!(admin.post("/admin/ageing", &[("days_received", "10")]).await.status, 303);
    assert!(
        admin.get("/admin/ageing").await.body.contains("name=\"days_received\" min=\"1\" max=\"365\" value=\"10\"")
    );
    assert!(overdue_ids(&s.get("/requests").await.body).is_empty());
    assert!(!s.get("/requests?overdue=1").await.body.contains(&format!("href=\"/requests/{old}\"")));
    let audited: i64 = app
        .with_conn(|c| audit_log::table.filter(audit_log::entity_type.eq("ageing_thresholds")).count().get_result(c))
        .unwrap_or(0);
    assert_eq!(audited, 1, "only the valid change is recorded");
});

smtp_test!(morning_digest_of_overdue_requests, |app, inbox| {
    let sale1 = app.create_user("sale1@ipos.vn", &[Role::Sale]);
    let sale2 = app.create_user("sale2@ipos.vn", &[Role::Sale]);
    assert_eq!(app.login("sale2@ipos.vn").await.post("/account/settings", &[("on_assign", "1")]).await.status, 303);
    let (late, fresh, other) = app.with_conn(|c| {
        (
            open(c, &sale1, "VNPAY", "Cơm Gà Bà Buội", "Bà Buội – Hội An", ""),
            open(c, &sale1, "VNPAY", "Mì Quảng Ếch", "Ếch – Đà Nẵng", ""),
            open(c, &sale2, "VNPAY", "Bánh Xèo Mười Xiềm", "Mười Xiềm – Quận 1", ""),
        )
    });
    waited(&app, late, 4);
    waited(&app, other, 4);

    // 08:00 in Ho Chi Minh City is 01:00 UTC; two nodes tick the same slot. The last slot
    // already passed: one still ahead (a run before 01:00 UTC) would not be due until then.
    let now = hubgate::db::now();
    let today = chrono::NaiveDateTime::new(now.date(), chrono::NaiveTime::from_hms_opt(1, 0, 5).unwrap_or_default());
    let at = if today <= now { today } else { today - chrono::Duration::days(1) };
    let digest: Vec<_> = hubgate::app::registry(&app.state.config)
        .schedules()
        .into_iter()
        .filter(|s| s.kind == hubgate::hub::ageing::DIGEST_JOB)
        .collect();
    assert_eq!(digest.len(), 1);
    assert_eq!(app.with_conn(|c| schedule::tick(c, &digest, at)).unwrap_or(9), 1);
    assert_eq!(app.with_conn(|c| schedule::tick(c, &digest, at)).unwrap_or(9), 0, "one slot, one job");
    work_until(&app, || !inbox.received().is_empty()).await;

    let mails: Vec<(String, String)> = inbox
        .received()
        .iter()
        .filter_map(|raw| mail_parser::MessageParser::default().parse(raw))
        .map(|m| {
            let to = m.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or("").to_string();
            (to, m.body_text(0).map(|t| t.to_string()).unwrap_or_default())
        })
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (to, body) = &mails[0];
    assert_eq!(to, "sale1@ipos.vn", "sale2 opted out of the digest");
    assert!(body.contains(&format!("#{late} VNPAY – Cơm Gà Bà Buội")), "{body}");
    assert!(!body.contains(&format!("#{fresh} ")) && !body.contains(&format!("#{other} ")));

    // A retried job (after a crash) mails nobody twice.
    let again = app.with_conn(|c| {
        hubgate::hub::ageing::send_digest(
            c,
            &app.state.config,
            &Actor::system("test"),
            at,
            hubgate::fmt::local_date(at),
        )
    });
    assert_eq!(again.unwrap_or(9), 0);
});

/// A plain UTF-8 mail as a partner would send it.
pub(crate) fn eml(from: &str, subject: &str, body: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: hub@ipos.vn\r\nSubject: {subject}\r\nDate: Mon, 2 Nov 2026 09:00:00 +0700\r\n\
         Message-ID: <{id}@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn ingest(app: &TestApp, raw: &[u8]) -> i64 {
    let cfg = app.state.config.mail.clone();
    app.with_conn(|c| hubgate::mail::inbound::service::ingest(c, &cfg, raw, "test", None))
        .ok()
        .and_then(|r| r.id)
        .unwrap_or(-1)
}

/// Which of `ids` a list page links to under `prefix` ("/requests/", "/pyc/", "/mail/").
fn linked(body: &str, prefix: &str, ids: &[i64]) -> Vec<i64> {
    ids.iter().copied().filter(|id| body.contains(&format!("href=\"{prefix}{id}\""))).collect()
}

db_test!(search_by_pyc_number_pos_id_point_code_and_phone, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    let (ra, rb, rc, pa, pb, na) = app.with_conn(|c| {
        let ra = open(c, &sale, "VNPAY", "Mì Quảng Ếch", "Ếch – Hải Châu", "0905 123 456");
        hub::manual_confirmation(c, &actor(&leader), ra, "merchant", "gọi điện").unwrap_or_else(|e| panic!("{e:?}"));
        let mut d = hub::acceptance_draft(c, ra, "Sale").unwrap_or_else(|e| panic!("{e:?}"));
        d.to = "hub@vnpay.vn".into();
        let v = hubgate::hub::models::request(c, ra).map(|r| r.version).unwrap_or(0);
        hub::accept(c, &app.state.config.outbound, &actor(&sale), ra, v, &d).unwrap_or_else(|e| panic!("{e:?}"));
        let (pa, na) = draft(c, &app, &sale, ra);
        diesel::update(pycs::table.find(pa))
            .set((pycs::pos_id.eq("POS-778899"), pycs::point_code.eq("MD-ABC")))
            .execute(c)
            .unwrap_or(0);
        let rb = accepted(c, &app, &sale, &leader, "Bún Chả Hà Nội");
        let (pb, _) = draft(c, &app, &sale, rb);
        let rc = open(c, &sale, "VNPAY", "Cà Phê Đà Lạt", "Đà Lạt – Quận 3", "0912 000 111");
        (ra, rb, rc, pa, pb, na)
    });
    let s = app.login("sale@ipos.vn").await;
    let all = [ra, rb, rc];
    let number = na.to_lowercase();
    for (q, expected) in [
        (number.as_str(), vec![ra]),
        ("pos-778899", vec![ra]),
        ("MD-abc", vec![ra]),
        ("0905.123.456", vec![ra]),
        ("0912000111", vec![rc]),
        ("bun cha HA NOI", vec![rb]),
        ("Đà Lạt", vec![rc]),
    ] {
        let page = s.get(&format!("/requests?q={}", urlencoding::encode(q))).await;
        assert_eq!(linked(&page.body, "/requests/", &all), expected, "requests, q={q}");
    }
    for (q, expected) in
        [("pos-778899", vec![pa]), (number.as_str(), vec![pa]), ("ha noi", vec![pb]), ("0905123456", vec![pa])]
    {
        let page = s.get(&format!("/pyc?q={}", urlencoding::encode(q))).await;
        assert_eq!(linked(&page.body, "/pyc/", &[pa, pb]), expected, "pyc, q={q}");
    }
});

db_test!(inbox_search_folds_case_and_diacritics_over_subject_and_body, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let danang = ingest(&app, &eml("hub@vnpay.vn", "Mở cổng kết nối tại Đà Nẵng", "Điểm bán ở Hội An.", "m1"));
    let hanoi = ingest(&app, &eml("hub@vnpay.vn", "Kết nối HUB Hà Nội", "Phố Lò Đúc.", "m2"));
    let other = ingest(&app, &eml("news@quangcao.example", "Khuyến mãi", "Giảm giá đà điểu.", "m3"));
    let ids = [danang, hanoi, other];
    assert!(ids.iter().all(|id| *id > 0), "{ids:?}");
    // Mail stored before the search column existed is folded by the next migrate.
    app.with_conn(|c| {
        use hubgate::db::schema::mail_messages;
        diesel::update(mail_messages::table.find(hanoi))
            .set(mail_messages::search_text.eq(None::<String>))
            .execute(c)
            .unwrap_or(0);
        hubgate::app::migrate(c).unwrap_or_else(|e| panic!("{e}"))
    });
    let s = app.login("sale@ipos.vn").await;
    for (q, expected) in [
        ("da nang", vec![danang]),
        ("ĐÀ NẴNG", vec![danang]),
        ("hoi an", vec![danang]),
        ("HÀ nội", vec![hanoi]),
        ("lo duc", vec![hanoi]),
        ("quangcao", vec![other]),
        ("đà", vec![danang, other]),
    ] {
        let page = s.get(&format!("/mail?status=all&q={}", urlencoding::encode(q))).await;
        let mut found = linked(&page.body, "/mail/", &ids);
        found.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(found, expected, "q={q}");
    }
});

/// The cells of the first sheet of an xlsx download, as text, header row first.
fn xlsx_rows(bytes: Vec<u8>) -> Vec<Vec<String>> {
    use calamine::{Reader, Xlsx, open_workbook_from_rs};
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("xlsx: {e}"));
    let range = book.worksheet_range_at(0).unwrap_or_else(|| panic!("no sheet")).unwrap_or_else(|e| panic!("{e}"));
    range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
}

fn csv_rows(bytes: Vec<u8>) -> Vec<Vec<String>> {
    let text = String::from_utf8(bytes).unwrap_or_default();
    let text = text.strip_prefix('\u{feff}').unwrap_or_else(|| panic!("csv without BOM"));
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()).unwrap_or_default())
        .collect()
}

db_test!(exports_are_the_lists_as_filtered, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    let (hit, miss, pa, pb, na) = app.with_conn(|c| {
        let hit = open(c, &sale, "VNPAY", "Bánh Mì Huỳnh Hoa", "Huỳnh Hoa – Quận 1", "");
        let miss = open(c, &sale, "VNPAY", "Cơm Tấm Ba Ghiền", "Ba Ghiền – Phú Nhuận", "");
        let (pa, na) = new_draft(c, &app, &sale, &leader, "Hủ Tiếu Nam Vang");
        let (pb, _) = new_draft(c, &app, &sale, &leader, "Chè Khúc Bạch");
        (hit, miss, pa, pb, na)
    });
    waited(&app, hit, 6);
    let s = app.login("sale@ipos.vn").await;
    // The page offers the export of what it shows.
    let page = s.get("/requests?q=huynh+hoa&state=received").await;
    assert!(page.body.contains("/requests/export?format=xlsx&#38;state=received&#38;q=huynh%20hoa"), "{}", page.body);

    let rows = xlsx_rows(s.bytes("/requests/export?format=xlsx&state=received&q=huynh%20hoa").await);
    assert_eq!(rows[0][..4], ["Số yêu cầu", "Đối tác", "Merchant", "Trạng thái"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[1][0].as_str(), rows[1][1].as_str(), rows[1][2].as_str()),
        (hit.to_string().as_str(), "VNPAY", "Bánh Mì Huỳnh Hoa")
    );
    assert_eq!(rows[1][7], "Có", "overdue");
    let rows = csv_rows(s.bytes("/requests/export?format=csv&state=received&q=huynh%20hoa").await);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], hit.to_string());
    // Unfiltered, both are there; a date is a real Excel date in local time.
    let all = xlsx_rows(s.bytes("/requests/export?format=xlsx&state=received").await);
    let ids: Vec<&str> = all[1..].iter().map(|r| r[0].as_str()).collect();
    assert!(ids.contains(&hit.to_string().as_str()) && ids.contains(&miss.to_string().as_str()), "{ids:?}");
    assert_eq!(s.get("/requests/export?format=pdf").await.status, 422);

    let rows = xlsx_rows(s.bytes(&format!("/pyc/export?format=xlsx&q={}", urlencoding::encode(&na))).await);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], na);
    let rows = csv_rows(s.bytes("/pyc/export?format=csv&state=draft").await);
    assert_eq!(rows.len(), 2);
    let _ = (pa, pb);

    let danang = ingest(&app, &eml("hub@vnpay.vn", "Mở cổng kết nối tại Đà Nẵng", "Điểm ở Hội An.", "x1"));
    ingest(&app, &eml("hub@vnpay.vn", "Kết nối Hà Nội", "Lò Đúc.", "x2"));
    assert!(danang > 0);
    let rows = csv_rows(s.bytes("/mail/export?format=csv&status=all&q=da%20nang").await);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0][2].as_str(), rows[0][3].as_str()), ("hub@vnpay.vn", "Mở cổng kết nối tại Đà Nẵng"));
    let rows = xlsx_rows(s.bytes("/mail/export?format=xlsx&status=all&q=da%20nang").await);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][3], "Mở cổng kết nối tại Đà Nẵng");
});

use crate::support::audit_trail as audit_of;

db_test!(merchants_points_and_customers_are_edited_and_audited, |app| {
    use hubgate::db::schema::{customers, merchants, points, request_points};
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let (rid, other) = app.with_conn(|c| {
        let rid = open(c, &sale, "VNPAY", "Cà phê Sông Hàn", "Sông Hàn – Hải Châu", "0905 111 222");
        // Another merchant whose name and point name the edits must not take or be blocked by.
        let other = open(c, &sale, "VNPAY", "Trà sữa Hạ Long", "Điểm Bạch Đằng", "0912 000 999");
        (rid, other)
    });
    let (mid, pid) = app.with_conn(|c| {
        let r = hubgate::hub::models::request(c, rid).unwrap_or_else(|e| panic!("{e:?}"));
        let p: i64 = request_points::table
            .filter(request_points::request_id.eq(rid))
            .select(request_points::point_id)
            .first(c)
            .unwrap_or(-1);
        (r.merchant_id, p)
    });
    let other_mid = app.with_conn(|c| hubgate::hub::models::request(c, other).map(|r| r.merchant_id).unwrap_or(-1));
    // A second point of the same merchant, for the point-name clash.
    let second = app.with_conn(|c| {
        hubgate::hub::models::ensure_point(
            c,
            &hubgate::hub::models::NewPoint {
                merchant_id: mid,
                name: "Sông Hàn – Sơn Trà",
                address: "",
                contact_name: "",
                phone: "",
                key: &hubgate::mail::inbound::classify::fold("Sông Hàn – Sơn Trà"),
            },
        )
        .unwrap_or(-1)
    });
    let s = app.login("sale@ipos.vn").await;

    // The merchant page leads to the forms.
    let page = s.get(&format!("/merchants/{mid}")).await;
    assert!(page.body.contains(&format!("href=\"/merchants/{mid}/edit\"")), "{}", page.body);
    assert!(page.body.contains(&format!("href=\"/points/{pid}/edit\"")));
    let form = s.get(&format!("/merchants/{mid}/edit")).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"Cà phê Sông Hàn\""));

    // Rename and new phone: shown, found by the new name and phone, audited.
    let saved = s
        .post(
            &format!("/merchants/{mid}/edit"),
            &[("name", "Cà phê Sông Hàn Xanh"), ("contact_name", "Chị Lan"), ("phone", "0236.777.888"), ("email", "")],
        )
        .await;
    assert_eq!((saved.status, saved.location.as_deref()), (303, Some(format!("/merchants/{mid}").as_str())));
    let page = s.get(&format!("/merchants/{mid}")).await;
    assert!(page.body.contains("Cà phê Sông Hàn Xanh") && page.body.contains("Chị Lan"), "{}", page.body);
    let found = s.get("/merchants?q=song%20han%20xanh").await;
    assert!(found.body.contains(&format!("/merchants/{mid}\"")), "search by the new name");
    let by_phone = s.get("/requests?q=0236777888").await;
    assert_eq!(linked(&by_phone.body, "/requests/", &[rid, other]), vec![rid], "phone key recomputed");
    let audit = audit_of(&app, "merchant", mid);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "update");
    assert!(audit[0].1.contains("Cà phê Sông Hàn\"") && audit[0].2.contains("Cà phê Sông Hàn Xanh"), "{audit:?}");
    let a = app.login("admin@ipos.vn").await;
    let log = a.get(&format!("/admin/audit?entity=merchant&entity_id={mid}")).await;
    assert!(log.body.contains("Cà phê Sông Hàn Xanh"), "the audit page shows the change");

    // Renaming into another merchant's name (case and diacritics aside) is a conflict.
    let clash = s
        .post(
            &format!("/merchants/{mid}/edit"),
            &[("name", "TRA SUA HA LONG"), ("contact_name", "Chị Lan"), ("phone", "")],
        )
        .await;
    assert_eq!(clash.status, 409, "{}", clash.body);
    assert!(clash.body.contains("Đã có merchant khác tên “Trà sữa Hạ Long”"), "{}", clash.body);
    assert!(clash.body.contains("value=\"TRA SUA HA LONG\""), "the typed name is kept");
    let empty = s.post(&format!("/merchants/{mid}/edit"), &[("name", "  "), ("phone", "0905")]).await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("Vui lòng nhập tên merchant.") && empty.body.contains("value=\"0905\""));
    let names: Vec<String> = app
        .with_conn(|c| {
            merchants::table
                .filter(merchants::id.eq_any([mid, other_mid]))
                .order(merchants::id)
                .select(merchants::name)
                .load(c)
        })
        .unwrap_or_default();
    assert_eq!(names, ["Cà phê Sông Hàn Xanh", "Trà sữa Hạ Long"]);
    assert_eq!(audit_of(&app, "merchant", mid).len(), 1, "refused edits are not audited");
    // Without the form's token nothing changes.
    let forged = s.post_raw(&format!("/merchants/{mid}/edit"), &[("name", "Giả mạo")]).await;
    assert_eq!(forged.status, 403);

    // Points: edited on the merchant page; a name clash is within the merchant only.
    let saved = s
        .post(
            &format!("/points/{pid}/edit"),
            &[("name", "Điểm Bạch Đằng"), ("address", "12 Bạch Đằng, Hải Châu"), ("pos_id", "POS-4455")],
        )
        .await;
    assert_eq!(saved.status, 303, "another merchant's point name is free: {}", saved.body);
    let page = s.get(&format!("/merchants/{mid}")).await;
    assert!(page.body.contains("12 Bạch Đằng, Hải Châu") && page.body.contains("POS-4455"));
    let clash = s.post(&format!("/points/{second}/edit"), &[("name", "điểm bạch đằng")]).await;
    assert_eq!(clash.status, 409);
    assert!(clash.body.contains("Merchant này đã có điểm khác tên “Điểm Bạch Đằng”"), "{}", clash.body);
    let point_names: Vec<String> = app
        .with_conn(|c| points::table.filter(points::merchant_id.eq(mid)).order(points::id).select(points::name).load(c))
        .unwrap_or_default();
    assert_eq!(point_names, ["Điểm Bạch Đằng", "Sông Hàn – Sơn Trà"]);
    let audit = audit_of(&app, "point", pid);
    assert_eq!(audit.len(), 1);
    assert!(audit[0].1.contains("Sông Hàn – Hải Châu") && audit[0].2.contains("POS-4455"), "{audit:?}");
    assert!(s.get("/requests?q=pos-4455").await.body.contains(&format!("href=\"/requests/{rid}\"")));

    // Customers: edited from the list, the old name no longer found.
    assert_eq!(
        s.post("/customers", &[("name", "Công ty Cổ phần Sông Hàn"), ("tax_code", "0401234567")]).await.status,
        303
    );
    s.post("/customers", &[("name", "Công ty TNHH Hạ Long")]).await;
    let cid: i64 = app
        .with_conn(|c| customers::table.filter(customers::tax_code.eq("0401234567")).select(customers::id).first(c))
        .unwrap_or(-1);
    assert!(s.get("/customers").await.body.contains(&format!("href=\"/customers/{cid}/edit\"")));
    let bad = s.post(&format!("/customers/{cid}/edit"), &[("name", ""), ("tax_code", "999")]).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Vui lòng nhập tên khách hàng.") && bad.body.contains("value=\"999\""));
    let saved = s
        .post(&format!("/customers/{cid}/edit"), &[("name", "Công ty CP Sông Hàn Xanh"), ("tax_code", "0401234567")])
        .await;
    assert_eq!(saved.status, 303);
    let list = s.get("/customers?q=song%20han%20xanh").await;
    assert!(list.body.contains("Công ty CP Sông Hàn Xanh") && !list.body.contains("Hạ Long"), "{}", list.body);
    let audit = audit_of(&app, "customer", cid);
    assert_eq!(audit.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["create", "update"]);
    assert!(audit[1].1.contains("Công ty Cổ phần Sông Hàn") && audit[1].2.contains("Công ty CP Sông Hàn Xanh"));
});

db_test!(a_stopped_partner_takes_no_new_requests_and_keeps_its_history, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let old = app.with_conn(|c| open(c, &sale, "MOMO", "Bánh mì Phượng", "Phượng – Hội An", ""));
    let momo = crate::support::partner_id(&app, "MOMO");
    let vnpay = crate::support::partner_id(&app, "VNPAY");
    let a = app.login("admin@ipos.vn").await;
    let s = app.login("sale@ipos.vn").await;
    let offered = |body: &str, id: i64| body.contains(&format!("<option value=\"{id}\""));
    assert!(offered(&s.get("/requests/new").await.body, momo));
    // The lists, read before the stop, name it plainly.
    for page in ["/requests", "/mail", "/dashboard"] {
        let body = s.get(page).await.body;
        assert!(body.contains("MOMO") && !body.contains("ngừng dùng"), "{page}: {body}");
    }

    let stop = a.post(&format!("/admin/partners/{momo}/disable"), &[]).await;
    assert_eq!(stop.status, 303);
    assert!(a.get("/admin/partners").await.body.contains("Ngừng dùng"));

    // Not offered, and a forged post naming it is refused with the reason.
    let form = s.get("/requests/new").await;
    assert!(!offered(&form.body, momo) && offered(&form.body, vnpay), "{}", form.body);
    let forged = s
        .post(
            "/requests",
            &[("partner_id", &momo.to_string()), ("merchant_name", "Cơm gà Bà Buội"), ("point_name", "Bà Buội")],
        )
        .await;
    assert_eq!(forged.status, 422);
    assert!(forged.body.contains("Đối tác MOMO đã ngừng dùng"), "{}", forged.body);
    let count = app.with_conn(|c| hubgate::db::schema::requests::table.count().get_result::<i64>(c)).unwrap_or(0);
    assert_eq!(count, 1, "no request opened");
    let ok = s
        .post(
            "/requests",
            &[("partner_id", &vnpay.to_string()), ("merchant_name", "Cơm gà Bà Buội"), ("point_name", "Bà Buội")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);

    // Old requests keep showing it; list filters can still find them, marked from the
    // very next page after the stop.
    assert!(s.get(&format!("/requests/{old}")).await.body.contains("MOMO"));
    let list = s.get("/requests?partner=MOMO").await;
    assert!(list.body.contains("MOMO (ngừng dùng)"));
    assert!(s.get("/mail").await.body.contains("MOMO (ngừng dùng)"));
    assert_eq!(linked(&list.body, "/requests/", &[old]), vec![old]);

    // New mail from it is stored, recognised and marked.
    let mail = ingest(&app, &eml("hotro@momo.vn", "Mở cổng cho điểm mới", "Nhờ anh chị mở cổng.", "momo-after-stop"));
    assert!(mail > 0);
    let inbox = s.get("/mail").await;
    assert!(inbox.body.contains(&format!("/mail/{mail}\"")) && inbox.body.contains("ngừng dùng"), "{}", inbox.body);
    assert!(s.get(&format!("/mail/{mail}")).await.body.contains("MOMO – Ví điện tử MoMo (đối tác đã ngừng dùng)"));

    // Back in use: offered again; both changes audited.
    assert_eq!(a.post(&format!("/admin/partners/{momo}/enable"), &[]).await.status, 303);
    assert!(offered(&s.get("/requests/new").await.body, momo));
    let actions: Vec<String> = audit_of(&app, "partner", momo).into_iter().map(|a| a.0).collect();
    assert_eq!(actions, ["disable", "enable"]);
});

db_test!(a_partner_added_by_another_process_shows_in_the_lists_within_a_second, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let s = app.login("sale@ipos.vn").await;
    let filter_offers = |body: &str| body.contains("<option value=\"SHOPEEPAY\"");
    assert!(!filter_offers(&s.get("/requests").await.body));
    // Another node (or the CLI) adds it: nothing in this process hears of it.
    let added = app
        .with_conn(|c| {
            let t = hubgate::db::now();
            diesel::insert_into(partners::table)
                .values((
                    partners::code.eq("SHOPEEPAY"),
                    partners::name.eq("Ví ZaloPay"),
                    partners::kind.eq("wallet"),
                    partners::created_at.eq(t),
                    partners::updated_at.eq(t),
                ))
                .execute(c)
        })
        .unwrap_or(0);
    assert_eq!(added, 1);
    tokio::time::sleep(hubgate::hub::REFERENCE_TTL + Duration::from_millis(100)).await;
    for page in ["/requests", "/mail"] {
        assert!(filter_offers(&s.get(page).await.body), "{page} offers the new partner");
    }
    assert!(s.get("/dashboard").await.body.contains("<th>SHOPEEPAY</th>"));
});

db_test!(a_stopped_pyc_template_is_not_used_for_new_pycs, |app| {
    use hubgate::db::schema::pyc_templates;
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let leader = app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let a = app.login("admin@ipos.vn").await;
    let saved = a
        .post("/admin/pyc-templates", &[("kind", "payment"), ("body", "Mẫu mới cho {partner}"), ("items", "*Kiểm tra")])
        .await;
    assert_eq!(saved.status, 303);
    let versions: Vec<(i64, i64)> = app
        .with_conn(|c| {
            pyc_templates::table
                .filter(pyc_templates::kind.eq("payment"))
                .order(pyc_templates::version)
                .select((pyc_templates::id, pyc_templates::version))
                .load(c)
        })
        .unwrap_or_default();
    let (v1, v2) = (versions[0].0, versions[versions.len() - 1].0);
    // A PYC made with the newest version, before it is stopped.
    let (with_v2, _) = app.with_conn(|c| new_draft(c, &app, &sale, &leader, "Phở Thìn"));
    let rid = app.with_conn(|c| accepted(c, &app, &sale, &leader, "Bún bò Huế O Xuân"));
    let s = app.login("sale@ipos.vn").await;
    assert!(
        s.get(&format!("/requests/{rid}/pyc/new")).await.body.contains(&format!("name=\"template_id\" value=\"{v2}\""))
    );

    assert_eq!(a.post(&format!("/admin/pyc-templates/{v2}/disable"), &[]).await.status, 303);
    assert!(a.get("/admin/pyc-templates").await.body.contains("Ngừng dùng"));
    let form = s.get(&format!("/requests/{rid}/pyc/new")).await;
    assert!(form.body.contains(&format!("name=\"template_id\" value=\"{v1}\"")), "{}", form.body);
    assert!(!form.body.contains("Mẫu mới cho"), "the stopped template's notes are not offered");

    // A post still naming the stopped version (a stale or forged form) is refused.
    let (fields, _) = app.with_conn(|c| pyc::draft_fields(c, rid)).unwrap_or_else(|e| panic!("{e:?}"));
    let fields = serde_json::to_value(&fields).unwrap_or_default();
    let mut post: Vec<(String, String)> = fields
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    post.push(("template_id".into(), v2.to_string()));
    let refused = s.post(&format!("/requests/{rid}/pyc"), &as_refs(&post)).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains(&format!("payment v{} đã ngừng dùng", versions.len())), "{}", refused.body);
    assert!(app.with_conn(|c| pyc_models::pyc_of_request(c, rid)).ok().flatten().is_none());
    post.pop();
    post.push(("template_id".into(), v1.to_string()));
    let created = s.post(&format!("/requests/{rid}/pyc"), &as_refs(&post)).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let made = app.with_conn(|c| pyc_models::pyc_of_request(c, rid)).ok().flatten().map(|p| p.template_id);
    assert_eq!(made, Some(v1));

    // The PYC made before keeps its (now stopped) version.
    let page = s.get(&format!("/pyc/{with_v2}")).await;
    assert!(page.body.contains(&format!("payment v{}", versions.len())), "{}", page.body);
    let actions: Vec<String> = audit_of(&app, "pyc_template", v2).into_iter().map(|a| a.0).collect();
    assert_eq!(actions, ["create", "disable"]);
});

/// A 1×1 PNG, base64.
pub(crate) const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// A valid one-page PDF ("HOP DONG" in Helvetica), with the exact cross-reference
/// offsets a strict viewer wants: the browser test checks Chromium's viewer opens it.
pub(crate) fn one_page_pdf() -> Vec<u8> {
    let text = "BT /F1 36 Tf 20 100 Td (HOP DONG) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf += &format!("{} 0 obj\n{object}\nendobj\n", i + 1);
    }
    let xref = pdf.len();
    pdf += &format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        pdf += &format!("{offset:010} 00000 n \n");
    }
    pdf += &format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    pdf.into_bytes()
}

/// A partner mail with a PNG, a PDF, an SVG with a script, a PNG named `.html` and
/// an SVG declared and named as a PNG.
pub(crate) fn mail_with_files(id: &str) -> Vec<u8> {
    use base64::Engine;
    let part = |ctype: &str, name: &str, enc: &str, body: &str| {
        format!(
            "--b\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: {enc}\r\n\r\n{body}\r\n"
        )
    };
    format!(
        "From: hub@vnpay.vn\r\nTo: hub@ipos.vn\r\nSubject: Ảnh điểm bán và hợp đồng\r\nDate: Mon, 2 Nov 2026 09:00:00 +0700\r\n\
         Message-ID: <{id}@test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGửi anh ảnh và hợp đồng.\r\n\
         {}{}{}{}{}--b--\r\n",
        part("image/png", "diem-ban.png", "base64", PNG_B64),
        part("application/pdf", "hop-dong.pdf", "base64", &base64::engine::general_purpose::STANDARD.encode(one_page_pdf())),
        part(
            "image/svg+xml",
            "logo.svg",
            "7bit",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.cookie)</script></svg>"
        ),
        part("image/png", "trang.html", "base64", PNG_B64),
        // Declared a PNG, named one, is an SVG: what it says about itself is not believed.
        part("image/png", "logo-gia.png", "7bit", "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"),
    )
    .into_bytes()
}

db_test!(image_and_pdf_attachments_are_previewed_by_their_bytes, |app| {
    use hubgate::db::schema::mail_attachments;
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let mail = ingest(&app, &mail_with_files("files-1"));
    let plain = ingest(&app, &eml("hub@vnpay.vn", "Không có tệp", "Chỉ chữ.", "plain-1"));
    let files: Vec<(String, i64)> = app
        .with_conn(|c| {
            mail_attachments::table
                .filter(mail_attachments::message_id.eq(mail))
                .select((mail_attachments::file_name, mail_attachments::id))
                .load(c)
        })
        .unwrap_or_default();
    let id =
        |name: &str| files.iter().find(|f| f.0 == name).map(|f| f.1).unwrap_or_else(|| panic!("{name}: {files:?}"));
    let (png, pdf, svg, html) = (id("diem-ban.png"), id("hop-dong.pdf"), id("logo.svg"), id("trang.html"));
    let fake = id("logo-gia.png");
    let s = app.login("sale@ipos.vn").await;
    let view = |aid: i64| format!("/mail/{mail}/attachments/{aid}/view");

    let (status, headers, _) = s.fetch(&format!("/mail/{mail}")).await;
    assert_eq!(status, 200);
    let page = s.get(&format!("/mail/{mail}")).await;
    assert!(page.body.contains(&format!("<img class=\"attachment-preview\" src=\"{}\"", view(png))), "{}", page.body);
    assert!(
        page.body.contains(&format!("<img class=\"attachment-preview\" src=\"{}\"", view(html))),
        "a PNG by its bytes: {}",
        page.body
    );
    // Chromium's PDF viewer refuses a sandboxed frame (the response's own policy sandboxes it).
    assert!(page.body.contains(&format!("<iframe class=\"attachment-preview pdf\" src=\"{}\"", view(pdf))));
    assert!(!page.body.contains(&view(svg)), "an SVG is never previewed");
    assert!(!page.body.contains(&view(fake)), "nor one that claims to be a PNG");
    assert!(page.body.contains(&format!("href=\"/mail/{mail}/attachments/{svg}\"")), "it stays downloadable");
    let csp = |h: &reqwest::header::HeaderMap| {
        h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    assert!(csp(&headers).contains("frame-src 'self'"), "{}", csp(&headers));
    let (_, headers, _) = s.fetch(&format!("/mail/{plain}")).await;
    assert!(csp(&headers).contains("frame-src 'none'"), "frames only where a PDF is previewed");

    let header = |h: &reqwest::header::HeaderMap, n: &str| {
        h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    for (aid, mime, frames) in
        [(png, "image/png", "DENY"), (html, "image/png", "DENY"), (pdf, "application/pdf", "SAMEORIGIN")]
    {
        let (status, h, body) = s.fetch(&view(aid)).await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-type"), mime, "attachment {aid}");
        assert!(header(&h, "content-disposition").starts_with("inline"), "{:?}", h);
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert!(csp(&h).starts_with("sandbox; default-src 'none'"), "{}", csp(&h));
        assert_eq!(header(&h, "x-frame-options"), frames);
        assert!(!body.is_empty());
    }
    let (_, h, _) = s.fetch(&view(png)).await;
    assert!(body_starts(&s, &view(png), b"\x89PNG").await && csp(&h).contains("frame-ancestors 'none'"));
    let (_, h, _) = s.fetch(&view(pdf)).await;
    assert!(csp(&h).contains("frame-ancestors 'self'"));

    // The SVG, asked for viewing or downloaded: opaque bytes, saved, never rendered.
    for path in [view(svg), format!("/mail/{mail}/attachments/{svg}"), view(fake)] {
        let (status, h, body) = s.fetch(&path).await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-type"), "application/octet-stream", "{path}");
        assert!(header(&h, "content-disposition").starts_with("attachment"), "{path}");
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert!(csp(&h).starts_with("sandbox"));
        assert!(String::from_utf8_lossy(&body).contains("<svg"), "nothing lost");
    }
});

fn as_refs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn body_starts(s: &crate::support::Browser, path: &str, magic: &[u8]) -> bool {
    s.fetch(path).await.2.starts_with(magic)
}

// A renamed merchant is found by its new name and no longer by its old one, and a
// two-letter query still finds what it names (guards any index put under the search).
db_test!(request_search_follows_edits_and_takes_short_queries, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    let (ra, rb) = app.with_conn(|c| {
        (
            open(c, &sale, "VNPAY", "Phở Hà Nội", "Điểm A", "0905 222 333"),
            open(c, &sale, "VNPAY", "Bánh Mì Sài Gòn", "Điểm B", "0912 444 555"),
        )
    });
    let mid = app.with_conn(|c| hubgate::hub::models::request(c, ra).map(|r| r.merchant_id).unwrap_or(-1));
    let s = app.login("sale@ipos.vn").await;
    let found = async |q: &str| {
        let page = s.get(&format!("/requests?q={}", urlencoding::encode(q))).await;
        linked(&page.body, "/requests/", &[ra, rb])
    };
    assert_eq!(found("PHO").await, vec![ra]);
    let saved = s.post(&format!("/merchants/{mid}/edit"), &[("name", "Bún Bò Huế"), ("phone", "0905 222 333")]).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(found("pho").await, Vec::<i64>::new(), "the old name is gone from the index");
    assert_eq!(found("bún bò").await, vec![ra]);
    assert_eq!(found("hu").await, vec![ra], "two letters");
    assert_eq!(found("sài gòn").await, vec![rb]);
    assert_eq!(found("4445").await, vec![rb], "phone digits");
});

/// Merchants of these names, and a request each for the first `with_requests` of them
/// (every fifth deploying, the rest received), waiting longer the later they come.
fn seed_searchable(app: &crate::support::TestApp, created_by: i64, names: &[String], with_requests: usize) {
    use hubgate::db::schema::{merchants, requests};
    let vnpay = crate::support::partner_id(app, "VNPAY");
    let now = hubgate::db::now();
    app.with_conn(|c| -> QueryResult<()> {
        for chunk in names.chunks(500) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|n| {
                    (
                        merchants::search_key.eq(hubgate::mail::inbound::classify::fold(n)),
                        merchants::name.eq(n.clone()),
                        merchants::phone.eq(""),
                        merchants::phone_key.eq(""),
                        merchants::created_at.eq(now),
                        merchants::updated_at.eq(now),
                    )
                })
                .collect();
            hubgate::with_conn!(c, |x| diesel::insert_into(merchants::table).values(&rows).execute(x))?;
        }
        let ids: Vec<i64> =
            merchants::table.order(merchants::id).select(merchants::id).limit(with_requests as i64).load(c)?;
        for (chunk_no, chunk) in ids.chunks(500).enumerate() {
            let rows: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let at = now - chrono::Duration::minutes((chunk_no * 500 + i) as i64);
                    (
                        requests::partner_id.eq(vnpay),
                        requests::merchant_id.eq(*id),
                        requests::state.eq(if (chunk_no * 500 + i) % 5 == 0 { "deploying" } else { "received" }),
                        requests::version.eq(1i64),
                        requests::opened_on.eq(at),
                        requests::state_since.eq(at),
                        requests::created_at.eq(at),
                        requests::updated_at.eq(at),
                        requests::created_by.eq(Some(created_by)),
                    )
                })
                .collect();
            hubgate::with_conn!(c, |x| diesel::insert_into(requests::table).values(&rows).execute(x))?;
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The total a request list page states.
async fn listed_total(s: &crate::support::Browser, query: &str) -> i64 {
    let page = s.get(&format!("/requests?{query}")).await;
    let line = page.body.split(" yêu cầu · trang").next().unwrap_or("").rsplit('>').next().unwrap_or("").to_string();
    line.trim().parse::<i64>().unwrap_or(-1)
}

// A search matching more merchants than the app looks up one by one (2,000) tests each
// request of the other filters against the matched ids; both ways must give the same
// rows and totals.
db_test!(a_broad_search_lists_the_same_as_a_narrow_one, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    // 2,050 "Quán Ốc …" merchants with a request each (every 5th deploying), and two others.
    let names: Vec<String> =
        (0..2_050).map(|i| format!("Quán Ốc {i}")).chain(["Phở Lý Quốc Sư".into(), "Chè Ốc Hà".into()]).collect();
    seed_searchable(&app, sale.id, &names, names.len());
    let s = app.login("sale@ipos.vn").await;
    let total = async |query: &str| listed_total(&s, query).await;
    // Broad: 2,050 merchants match (and "Chè Ốc Hà" does not: "oc ha" is not "quan oc").
    assert_eq!(total("q=qu%C3%A1n+%E1%BB%91c").await, 2_050);
    assert_eq!(total("q=quan+oc&state=deploying").await, 410);
    assert_eq!(total("q=quan+oc&state=open").await, 2_050, "every open state at once");
    assert_eq!(total("q=quan+oc&state=accepted").await, 0);
    // Narrow: a few merchants, looked up ahead.
    assert_eq!(total("q=quan+oc+204").await, 11, "204 and 2040…2049");
    assert_eq!(total("q=oc+ha").await, 1);
    assert_eq!(total("q=quan+oc+2045&state=deploying").await, 1);
    assert_eq!(total("q=quan+oc+2046&state=deploying").await, 0);
    // Both ways list a full first page in waiting order.
    let broad = s.get("/requests?q=quan+oc").await.body;
    let narrow = s.get("/requests?q=quan+oc+1").await.body;
    assert!(broad.contains(">Quán Ốc 2049<") && !broad.contains(">Quán Ốc 0<"), "oldest first");
    assert!(narrow.contains(">Quán Ốc 1999<") && !narrow.contains(">Quán Ốc 2000<"), "only the matches");
});

// A search broader than the app holds ids for (50,000 merchants) tests each request
// against the matching merchants instead, with the same totals and order.
db_test!(a_search_broader_than_the_lookup_tests_each_request, |app| {
    let sale = app.create_user("sale@ipos.vn", &[Role::Sale]);
    // "Chè Ốc Hà" first, then 50,001 "Quán Ốc …"; requests for the first 301 only.
    let names: Vec<String> =
        std::iter::once("Chè Ốc Hà".to_string()).chain((0..50_001).map(|i| format!("Quán Ốc {i}"))).collect();
    seed_searchable(&app, sale.id, &names, 301);
    let s = app.login("sale@ipos.vn").await;
    assert_eq!(listed_total(&s, "q=quan+oc").await, 300, "Chè Ốc Hà's request is not one");
    assert_eq!(listed_total(&s, "q=quan+oc&state=deploying").await, 60, "the 5th, 10th … 300th");
    assert_eq!(listed_total(&s, "q=quan+oc&state=open").await, 300);
    assert_eq!(listed_total(&s, "q=oc+ha").await, 1, "narrow beside it");
    let page = s.get("/requests?q=quan+oc").await.body;
    assert!(page.contains(">Quán Ốc 299<") && !page.contains(">Quán Ốc 300<"), "oldest first, only the matches");
    assert!(!page.contains(">Chè Ốc Hà<"));
});
