//! The month-end workbook: the timezone boundary, and every cell read back with calamine.

use calamine::{Data, DataType, Reader, Xlsx, open_workbook_from_rs};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use hubgate::accounts::Role;
use hubgate::audit::Actor;
use hubgate::db::DbConn;
use hubgate::db::schema::{partners, pycs};
use hubgate::hub::service::{self as hub, OpenRequest};
use hubgate::pyc::{models as pyc_models, service as pyc};
use hubgate::reports::{Month, month_counts, month_rows, workbook};

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3];

fn utc(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap_or_default()
}

/// A connection deployed at `when` (UTC), through the real services.
fn deployed(
    c: &mut DbConn,
    app: &crate::support::TestApp,
    partner: &str,
    merchant: &str,
    point: &str,
    when: NaiveDateTime,
) -> String {
    let sale = Actor::user(1, "sale@ipos.vn");
    let leader = Actor::user(2, "leader@ipos.vn");
    let tech = Actor::user(3, "kythuat@ipos.vn");
    let pid: i64 = partners::table.filter(partners::code.eq(partner)).select(partners::id).first(c).unwrap_or(-1);
    let input = OpenRequest {
        partner_id: pid,
        merchant_name: merchant.into(),
        point_name: point.into(),
        point_address: format!("{point}, Quận 1"),
        ..Default::default()
    };
    let rid = hub::open_request(c, &sale, &input).unwrap_or_else(|e| panic!("{e:?}"));
    hub::manual_confirmation(c, &leader, rid, "merchant", "gọi điện").unwrap_or_else(|e| panic!("{e:?}"));
    hub::manual_confirmation(c, &leader, rid, "leader", "gọi điện").unwrap_or_else(|e| panic!("{e:?}"));
    let mut draft = hub::acceptance_draft(c, rid, "Sale").unwrap_or_else(|e| panic!("{e:?}"));
    draft.to = "doitac@example.vn".into();
    let v = hubgate::hub::models::request(c, rid).map(|r| r.version).unwrap_or(0);
    hub::accept(c, &app.state.config.outbound, &sale, rid, v, &draft).unwrap_or_else(|e| panic!("{e:?}"));
    let (fields, _) = pyc::draft_fields(c, rid).unwrap_or_else(|e| panic!("{e:?}"));
    let id = pyc::create(c, &app.state.config, &sale, rid, &fields).unwrap_or_else(|e| panic!("{e:?}"));
    let v = pyc_models::pyc(c, id).map(|p| p.version).unwrap_or(0);
    pyc::advance(c, &app.state.config, &leader, id, v, hubgate::pyc::PycState::Reviewed)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let v = pyc_models::pyc(c, id).map(|p| p.version).unwrap_or(0);
    pyc::advance(c, &app.state.config, &sale, id, v, hubgate::pyc::PycState::Created)
        .unwrap_or_else(|e| panic!("{e:?}"));
    for item in pyc_models::items(c, id).unwrap_or_default().into_iter().filter(|i| i.required) {
        pyc::tick(c, &tech, id, item.id, true).unwrap_or_else(|e| panic!("{e:?}"));
    }
    let code = format!("MD-{point}");
    pyc::save_data(
        c,
        &app.state.config.keyring(),
        &tech,
        id,
        &format!("PP-{point}"),
        &format!("POS-{point}"),
        &code,
        "k1",
        "k2",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    pyc::save_screenshot(c, &tech, id, PNG).unwrap_or_else(|e| panic!("{e:?}"));
    let v = pyc_models::pyc(c, id).map(|p| p.version).unwrap_or(0);
    pyc::mark_deployed(c, &tech, id, v).unwrap_or_else(|e| panic!("{e:?}"));
    diesel::update(pycs::table.find(id)).set(pycs::deployed_at.eq(Some(when))).execute(c).unwrap_or(0);
    pyc_models::pyc(c, id).map(|p| p.number).unwrap_or_default()
}

fn text(d: Option<&Data>) -> String {
    match d {
        Some(Data::String(s)) => s.clone(),
        Some(Data::Float(f)) => f.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

db_test!(the_month_workbook_reads_back_cell_by_cell, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    let (a, b, c_, d) = app.with_conn(|c| {
        (
            // 23:30 on 31 Oct local time: October.
            deployed(c, &app, "MOMO", "Phở Thìn", "A1", utc("2026-10-31 16:30")),
            // 00:30 on 1 Nov local time: November.
            deployed(c, &app, "MOMO", "Bún Chả", "B2", utc("2026-10-31 17:30")),
            // Midnight on 1 Oct local time: October.
            deployed(c, &app, "GIFTPOP", "The Coffee House", "C3", utc("2026-09-30 17:00")),
            // 23:59 on 30 Sep local time: September.
            deployed(c, &app, "GIFTPOP", "Highlands", "D4", utc("2026-09-30 16:59")),
        )
    });
    let rows = app.with_conn(|c| month_rows(c, Month { year: 2026, month: 10 })).unwrap_or_else(|e| panic!("{e:?}"));
    let pycs_in: Vec<&str> = rows.iter().map(|r| r.pyc.as_str()).collect();
    assert_eq!(pycs_in, [c_.as_str(), a.as_str()], "the timezone decides the month");
    assert!(!pycs_in.contains(&b.as_str()) && !pycs_in.contains(&d.as_str()));

    let (bytes, listed) =
        app.with_conn(|c| workbook(c, Month { year: 2026, month: 10 })).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(listed.counts, [("GIFTPOP".to_string(), 1), ("MOMO".to_string(), 1)]);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(book.sheet_names(), ["Tổng hợp", "GIFTPOP", "MOMO"]);
    let summary = book.worksheet_range("Tổng hợp").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(summary.get_value((0, 0))), "Điểm kết nối thành công tháng 10/2026");
    assert_eq!(text(summary.get_value((2, 0))), "Đối tác");
    assert_eq!(text(summary.get_value((2, 1))), "Số điểm kết nối");
    assert_eq!((text(summary.get_value((3, 0))), text(summary.get_value((3, 1)))), ("GIFTPOP".into(), "1".into()));
    assert_eq!((text(summary.get_value((4, 0))), text(summary.get_value((4, 1)))), ("MOMO".into(), "1".into()));
    assert_eq!((text(summary.get_value((5, 0))), text(summary.get_value((5, 1)))), ("Tổng cộng".into(), "2".into()));
    let momo = book.worksheet_range("MOMO").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(momo.height(), 2);
    let header: Vec<String> = (0..10).map(|c| text(momo.get_value((0, c)))).collect();
    assert_eq!(header, hubgate::reports::HEADERS.map(String::from).to_vec());
    let row: Vec<String> = [0, 1, 2, 3, 4, 5, 6, 8, 9].iter().map(|c| text(momo.get_value((1, *c)))).collect();
    assert_eq!(
        row,
        ["MOMO", "Phở Thìn", "A1", "A1, Quận 1", "PP-A1", "POS-A1", "MD-A1", a.as_str(), "Người dùng kythuat@ipos.vn"]
    );
    let live = momo.get_value((1, 7)).and_then(|d| d.as_datetime()).unwrap_or_default();
    assert_eq!(live, utc("2026-10-31 23:30"), "a real Excel date, in local time");
    let gift = book.worksheet_range("GIFTPOP").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gift.get_value((1, 7)).and_then(|d| d.as_datetime()), Some(utc("2026-10-01 00:00")));

    // The accountant's page and download.
    let acc = app.login("ketoan@ipos.vn").await;
    let page = acc.get("/reports?month=2026-10").await;
    assert!(page.body.contains("Tổng cộng") && page.body.contains(&a));
    // The download is the month's workbook: its MOMO sheet holds the October point only.
    let (status, headers, bytes) = acc.fetch("/reports/2026-10/xlsx").await;
    assert_eq!(status, 200);
    let disposition = headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(disposition.contains("2026-10"), "{disposition}");
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(book.sheet_names(), ["Tổng hợp", "GIFTPOP", "MOMO"]);
    let momo = book.worksheet_range("MOMO").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(momo.height(), 2, "the header and the one October point");
    assert_eq!(text(momo.get_value((1, 5))), "POS-A1");
    assert_eq!(text(momo.get_value((1, 8))), a);
    assert_eq!(acc.get("/reports/2026-13/xlsx").await.status, 404);
    assert_eq!(app.login("sale@ipos.vn").await.get("/reports").await.status, 403);
});

db_test!(a_point_counts_once_in_the_month_of_its_first_deployment, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    let (e5_sep, e5_oct, e5_gift, f6_first, f6_again) = app.with_conn(|c| {
        (
            deployed(c, &app, "MOMO", "Bún Bò Huế", "E5", utc("2026-09-15 03:00")),
            // The same point and partner again in October: counted in September already.
            deployed(c, &app, "MOMO", "Bún Bò Huế", "E5", utc("2026-10-10 03:00")),
            // The same point with another partner is a connection of its own.
            deployed(c, &app, "GIFTPOP", "Bún Bò Huế", "E5", utc("2026-10-12 03:00")),
            deployed(c, &app, "MOMO", "Bún Bò Huế", "F6", utc("2026-10-20 03:00")),
            deployed(c, &app, "MOMO", "Bún Bò Huế", "F6", utc("2026-10-25 03:00")),
        )
    });
    let october = Month { year: 2026, month: 10 };
    let pycs_of = |m| {
        app.with_conn(|c| month_rows(c, m))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_iter()
            .map(|r| r.pyc)
            .collect::<Vec<_>>()
    };
    assert_eq!(pycs_of(Month { year: 2026, month: 9 }), std::slice::from_ref(&e5_sep));
    assert_eq!(pycs_of(october), [e5_gift.clone(), f6_first.clone()], "partner by partner, first deployments only");
    assert!(!pycs_of(october).contains(&e5_oct) && !pycs_of(october).contains(&f6_again));
    let counts = app.with_conn(|c| month_counts(c, october)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(counts, [("GIFTPOP".to_string(), 1), ("MOMO".to_string(), 1)]);
    let (bytes, listed) = app.with_conn(|c| workbook(c, october)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(listed.counts, counts);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    let momo = book.worksheet_range("MOMO").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(momo.height(), 2, "the header and F6's first deployment");
    assert_eq!(text(momo.get_value((1, 8))), f6_first);
    let page = app.login("ketoan@ipos.vn").await.get("/reports?month=2026-10").await;
    assert!(page.body.contains(&f6_first) && !page.body.contains(&f6_again), "the preview lists the same rows");

    // E5's September deployment moved past October: the October one is now E5's first.
    app.with_conn(|c| {
        diesel::update(pycs::table.filter(pycs::number.eq(&e5_sep)))
            .set(pycs::deployed_at.eq(Some(utc("2026-11-02 03:00"))))
            .execute(c)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let moved = [e5_gift, e5_oct, f6_first];
    assert_eq!(pycs_of(october), moved, "the next deployment takes the connection over");
    assert!(pycs_of(Month { year: 2026, month: 9 }).is_empty());
    assert!(pycs_of(Month { year: 2026, month: 11 }).is_empty(), "E5 went live in October");

    // A database from before the migration that keeps first deployments: the migration
    // works them out from the deployments already made.
    app.with_conn(|c| {
        use diesel::connection::SimpleConnection;
        let forget = "DELETE FROM __diesel_schema_migrations WHERE version = '20261202000122';";
        match c {
            DbConn::Sqlite(c) => c.batch_execute(&format!(
                "{}{forget}",
                include_str!("../../migrations/sqlite/2026-12-02-000122_first_deployments/down.sql")
            )),
            DbConn::Pg(c) => c.batch_execute(&format!(
                "{}{forget}",
                include_str!("../../migrations/postgres/2026-12-02-000122_first_deployments/down.sql")
            )),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(app.with_conn(|c| month_rows(c, october)).is_err(), "the list has nothing to read");
    let applied = app.with_conn(hubgate::db::migrate).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(pycs_of(october), moved);
    assert!(pycs_of(Month { year: 2026, month: 9 }).is_empty());
});

#[actix_web::test]
async fn month_end_mail_goes_out_once_with_the_workbook() {
    let app = crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    app.create_user("ketoan2@ipos.vn", &[Role::Accountant, Role::Sale]);
    use hubgate::worker::schedule::{Schedule, tick};
    let schedules: Vec<Schedule> = hubgate::app::registry(&app.state.config)
        .schedules()
        .into_iter()
        .filter(|s| s.name == "monthly-report")
        .collect();
    assert_eq!(schedules.len(), 1);
    // Two nodes tick on 1 Nov at 08:05 local.
    let at = utc("2026-11-01 01:05");
    let added = app.with_conn(|c| tick(c, &schedules, at).unwrap_or(0) + tick(c, &schedules, at).unwrap_or(0));
    assert_eq!(added, 1);
    let registry = hubgate::app::registry(&app.state.config);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let opts = hubgate::worker::runner::WorkerOptions {
        name: "t".into(),
        concurrency: 2,
        lease: std::time::Duration::from_secs(60),
        poll: std::time::Duration::from_millis(20),
        job_timeout: std::time::Duration::from_secs(20),
        grace: std::time::Duration::from_secs(2),
    };
    let worker =
        tokio::spawn(hubgate::worker::runner::run(app.state.services.clone(), std::sync::Arc::new(registry), opts, rx));
    let started = std::time::Instant::now();
    while !app.with_conn(|c| hubgate::worker::models::pending(c).map(|n| n == 0).unwrap_or(false)) {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let _ = stop.send(true);
    let _ = worker.await;
    let mails: Vec<(String, String, String)> = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_outbox;
            mail_outbox::table
                .select((mail_outbox::subject, mail_outbox::to_addrs, mail_outbox::attachment_names))
                .load(c)
        })
        .unwrap_or_default();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, "Danh sách điểm kết nối thành công tháng 10/2026");
    assert!(mails[0].1.contains("ketoan@ipos.vn") && mails[0].1.contains("ketoan2@ipos.vn"));
    assert_eq!(mails[0].2, "diem-ket-noi-2026-10.xlsx");
    // A replayed job (say, after a crash) does not mail again.
    app.with_conn(|c| {
        use hubgate::db::schema::jobs;
        diesel::update(jobs::table.filter(jobs::kind.eq("report.monthly_mail")))
            .set(jobs::done_at.eq(None::<NaiveDateTime>))
            .execute(c)
    })
    .unwrap_or(0);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let opts = hubgate::worker::runner::WorkerOptions {
        name: "t2".into(),
        concurrency: 2,
        lease: std::time::Duration::from_secs(60),
        poll: std::time::Duration::from_millis(20),
        job_timeout: std::time::Duration::from_secs(20),
        grace: std::time::Duration::from_secs(2),
    };
    let worker = tokio::spawn(hubgate::worker::runner::run(
        app.state.services.clone(),
        std::sync::Arc::new(hubgate::app::registry(&app.state.config)),
        opts,
        rx,
    ));
    crate::support::poll("the replayed job", async || {
        app.with_conn(|c| hubgate::worker::models::pending(c).map(|n| n == 0).unwrap_or(false)).then_some(())
    })
    .await;
    let _ = stop.send(true);
    let _ = worker.await;
    let count: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::mail_outbox;
            mail_outbox::table.filter(mail_outbox::subject.like("Danh sách điểm%")).count().get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(count, 1);
}

#[test]
fn cli_writes_the_workbook() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("thang10.xlsx");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
        .args(["report", "2026-10", "-o"])
        .arg(&out)
        .env("DATABASE_URL", format!("sqlite://{}/hub.db", dir.path().display()))
        .env("HUBGATE_DATA_DIR", dir.path())
        .env("HUBGATE_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let bytes = std::fs::read(&out).unwrap_or_default();
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(book.sheet_names(), ["Tổng hợp"]);
    let summary = book.worksheet_range("Tổng hợp").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(summary.get_value((3, 0))), "Tổng cộng");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
        .args(["report", "2026-13"])
        .env("DATABASE_URL", format!("sqlite://{}/hub.db", dir.path().display()))
        .env("HUBGATE_DATA_DIR", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!bad.status.success());
}

fn statement(rows: &[[&str; 4]]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let _ = sheet.set_name("Bang ke");
    for (c, h) in ["STT", "Mã POS", "Tên merchant", "Ngày kích hoạt"].iter().enumerate() {
        let _ = sheet.write_string(0, c as u16, *h);
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let _ = sheet.write_string(r as u32 + 1, c as u16, *v);
        }
    }
    book.save_to_buffer().unwrap_or_default()
}

db_test!(reconciliation_finds_every_kind_of_difference, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    app.with_conn(|c| {
        deployed(c, &app, "MOMO", "Phở Thìn", "A1", utc("2026-10-10 03:00"));
        deployed(c, &app, "MOMO", "Cơm Tấm Cali", "E5", utc("2026-10-11 03:00"));
        deployed(c, &app, "MOMO", "Lẩu Phan", "F6", utc("2026-10-12 03:00"));
        deployed(c, &app, "GIFTPOP", "Highlands", "G7", utc("2026-10-12 03:00"));
    });
    let acc = app.login("ketoan@ipos.vn").await;
    let home = acc.get("/reports/reconcile").await;
    assert_eq!(home.status, 200);
    let momo: i64 = crate::support::partner_id(&app, "MOMO");
    let upload = |bytes: Vec<u8>, name: &str| {
        let name = name.to_string();
        move |form: reqwest::multipart::Form| {
            form.text("partner_id", momo.to_string())
                .text("month", "2026-10")
                .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name))
        }
    };
    let file = statement(&[
        ["1", "pos-a1 ", "PHỞ THÌN", "10/10/2026"],
        ["2", "POS-E5", "Bún Bò Huế", "11/10/2026"],
        ["3", "POS-Z9", "Quán Lạ", "12/10/2026"],
    ]);
    let r = acc.upload("/reports/reconcile", upload(file.clone(), "momo-t10.xlsx")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let id: i64 = r.location.as_deref().and_then(|l| l.rsplit('/').next()).and_then(|s| s.parse().ok()).unwrap_or(-1);
    let page = acc.get(&format!("/reports/reconcile/{id}")).await;
    assert!(page.body.contains("Mã POS") && page.body.contains("Bang ke"), "headers offered for mapping");
    // A column that does not exist: a clear message, not a 500.
    let bad = acc
        .post(&format!("/reports/reconcile/{id}/run"), &[("sheet", "Bang ke"), ("header_row", "1"), ("pos_id", "9")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("không có trong trang"));
    let missing_sheet = acc
        .post(&format!("/reports/reconcile/{id}/run"), &[("sheet", "Sheet9"), ("header_row", "1"), ("pos_id", "1")])
        .await;
    assert!(missing_sheet.body.contains("Không có trang “Sheet9”"));
    let run = acc
        .post(
            &format!("/reports/reconcile/{id}/run"),
            &[("sheet", "Bang ke"), ("header_row", "1"), ("pos_id", "1"), ("merchant", "2"), ("date", "3")],
        )
        .await;
    assert_eq!(run.status, 303, "{}", run.body);
    let result = acc.get(&format!("/reports/reconcile/{id}")).await;
    assert!(
        result.body.contains(
            "<b>1</b> khớp · <b>1</b> chỉ có bên mình · <b>1</b> chỉ có bên đối tác · <b>1</b> lệch thông tin"
        ),
        "{}",
        result.body
    );
    assert!(result.body.contains("Lẩu Phan") && result.body.contains("POS-Z9") && result.body.contains("Bún Bò Huế"));
    assert!(!result.body.contains("Highlands"), "only this partner's points");

    // The outcome downloads as a workbook, one sheet per verdict; the mapping is reused next time.
    let (status, _, bytes) = acc.fetch(&format!("/reports/reconcile/{id}/xlsx")).await;
    assert_eq!(status, 200);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(book.sheet_names(), ["Khớp", "Chỉ có bên mình", "Chỉ có bên đối tác", "Lệch thông tin"]);
    let mut column = |sheet: &str, c: u32| -> Vec<String> {
        let range = book.worksheet_range(sheet).unwrap_or_else(|e| panic!("{sheet}: {e}"));
        (1..range.height() as u32).map(|r| text(range.get_value((r, c)))).collect()
    };
    assert_eq!(column("Khớp", 2), ["POS-A1"]);
    assert_eq!(column("Chỉ có bên mình", 2), ["POS-F6"]);
    assert_eq!(column("Chỉ có bên đối tác", 1), ["POS-Z9"]);
    assert_eq!(column("Chỉ có bên đối tác", 0), ["4"], "the line of the statement, as Excel numbers it");
    assert_eq!(column("Lệch thông tin", 2), ["POS-E5"]);
    let again = acc.upload("/reports/reconcile", upload(file, "momo-t10-b.xlsx")).await;
    let id2 = again.location.as_deref().and_then(|l| l.rsplit('/').next()).unwrap_or("").to_string();
    let second = acc.get(&format!("/reports/reconcile/{id2}")).await;
    assert!(second.body.contains("value=\"1\" selected"), "the saved mapping preselects the POS ID column");

    // Bad files get a Vietnamese message and nothing is stored.
    for (bytes, name, msg) in [
        (b"PK\x03\x04 broken zip".to_vec(), "hong.xlsx", "Tệp không đọc được"),
        (Vec::new(), "trong.xlsx", "Tệp trống"),
        (b" , ,\n,,\n".to_vec(), "rong.csv", "Tệp không có dữ liệu"),
        // Excel's "protect with password" (agile encryption in an OLE container), made
        // once with msoffcrypto-tool; password "mat-khau".
        (
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/statements/doi-soat-co-mat-khau.xlsx"))
                .unwrap_or_default(),
            "doi-soat-co-mat-khau.xlsx",
            "Tệp được đặt mật khẩu; hãy lưu lại bản không mật khẩu rồi tải lên.",
        ),
    ] {
        let r = acc.upload("/reports/reconcile", upload(bytes, name)).await;
        assert_eq!(r.location.as_deref(), Some("/reports/reconcile"));
        assert!(acc.get("/reports/reconcile").await.body.contains(msg), "{name}");
    }
    // CSV works too.
    let csv = "STT,Mã POS,Tên merchant,Ngày\n1,POS-A1,Phở Thìn,10/10/2026\n".as_bytes().to_vec();
    let r = acc.upload("/reports/reconcile", upload(csv, "momo.csv")).await;
    assert_eq!(r.status, 303);
    let count: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::reconciliations;
            reconciliations::table.count().get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(count, 3, "two xlsx and one csv kept; the bad files were not");
});

/// Uploads `file` as MOMO's October statement; the new reconciliation's id.
async fn upload_statement(acc: &crate::support::Browser, partner: i64, file: Vec<u8>) -> i64 {
    let r = acc
        .upload("/reports/reconcile", move |form: reqwest::multipart::Form| {
            form.text("partner_id", partner.to_string())
                .text("month", "2026-10")
                .part("file", reqwest::multipart::Part::bytes(file).file_name("momo-t10.xlsx"))
        })
        .await;
    r.location.as_deref().and_then(|l| l.rsplit('/').next()).and_then(|s| s.parse().ok()).unwrap_or(-1)
}

// The page lists the first 200 lines of a list and says how many more the workbook has.
db_test!(a_long_list_shows_its_head_and_counts_the_rest, |app| {
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    let acc = app.login("ketoan@ipos.vn").await;
    let momo: i64 = crate::support::partner_id(&app, "MOMO");
    let lines: Vec<[String; 4]> =
        (0..1_205).map(|i| [i.to_string(), format!("POS-Z{i}"), "Quán Lạ".into(), "12/10/2026".into()]).collect();
    let lines: Vec<[&str; 4]> = lines.iter().map(|l| [l[0].as_str(), &l[1], &l[2], &l[3]]).collect();
    let file = statement(&lines);
    let id = upload_statement(&acc, momo, file).await;
    let run = acc
        .post(&format!("/reports/reconcile/{id}/run"), &[("sheet", "Bang ke"), ("header_row", "1"), ("pos_id", "1")])
        .await;
    assert_eq!(run.status, 303, "{}", run.body);
    let page = acc.get(&format!("/reports/reconcile/{id}")).await;
    assert!(page.body.contains("<b>1205</b> chỉ có bên đối tác"), "{}", page.body);
    assert!(page.body.contains("Dòng 201: POS-Z199 ") && !page.body.contains("Dòng 202:"), "the first 200 lines");
    assert!(page.body.contains("… và 1.005 dòng khác trong tệp kết quả."), "{}", page.body);
});

// Outcomes saved as JSON text, before they were compressed, with each row's partner and
// key and every matched line's cells (all since dropped), still show and download.
db_test!(a_reconciliation_saved_as_text_still_reads, |app| {
    use hubgate::db::schema::reconciliations;
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    let acc = app.login("ketoan@ipos.vn").await;
    let momo: i64 = crate::support::partner_id(&app, "MOMO");
    let file = statement(&[["1", "POS-A1", "Phở Thìn", "10/10/2026"]]);
    let id = upload_statement(&acc, momo, file).await;
    let ours = |pos: &str, merchant: &str| {
        serde_json::json!({"key": pos, "partner": "MOMO", "merchant": merchant, "point": format!("Điểm {pos}"),
            "pos_id": pos, "point_code": "", "date": "2026-10-10", "pyc": format!("PYC-{pos}")})
    };
    let line = |n: u32, pos: &str, merchant: &str| serde_json::json!({"line": n, "key": pos, "merchant": merchant, "date": "10/10/2026"});
    let old = serde_json::json!({
        "matched": [[ours("POS-A1", "Phở Thìn"), line(2, "POS-A1", "PHỞ THÌN")]],
        "only_ours": [ours("POS-F6", "Lẩu Phan")],
        "only_theirs": [line(4, "POS-Z9", "Quán Lạ")],
        "differing": [[ours("POS-E5", "Cơm Tấm Cali"), line(3, "POS-E5", "Bún Bò Huế"), "merchant “Bún Bò Huế” ≠ “Cơm Tấm Cali”"]],
    });
    let saved = app.with_conn(|c| {
        diesel::update(reconciliations::table.find(id))
            .set((
                reconciliations::result.eq(Some(old.to_string())),
                (reconciliations::matched.eq(1), reconciliations::only_ours.eq(1)),
                (reconciliations::only_theirs.eq(1), reconciliations::differing.eq(1)),
                reconciliations::run_at.eq(Some(utc("2026-11-02 03:00"))),
            ))
            .execute(c)
    });
    assert_eq!(saved.ok(), Some(1));
    let page = acc.get(&format!("/reports/reconcile/{id}")).await;
    assert!(
        page.body.contains(
            "<b>1</b> khớp · <b>1</b> chỉ có bên mình · <b>1</b> chỉ có bên đối tác · <b>1</b> lệch thông tin"
        ),
        "{}",
        page.body
    );
    assert!(page.body.contains("Lẩu Phan") && page.body.contains("Dòng 4: POS-Z9 Quán Lạ"), "{}", page.body);
    assert!(page.body.contains("merchant “Bún Bò Huế” ≠ “Cơm Tấm Cali”"), "{}", page.body);
    let (status, _, bytes) = acc.fetch(&format!("/reports/reconcile/{id}/xlsx")).await;
    assert_eq!(status, 200);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    let mut column = |sheet: &str, c: u32| -> Vec<String> {
        let range = book.worksheet_range(sheet).unwrap_or_else(|e| panic!("{sheet}: {e}"));
        (1..range.height() as u32).map(|r| text(range.get_value((r, c)))).collect()
    };
    assert_eq!(column("Khớp", 5), ["PYC-POS-A1"]);
    assert_eq!(column("Lệch thông tin", 6), ["merchant “Bún Bò Huế” ≠ “Cơm Tấm Cali”"]);
    assert_eq!(column("Chỉ có bên đối tác", 2), ["Quán Lạ"]);
});

/// The PYC and request behind a number.
fn pyc_of(c: &mut DbConn, number: &str) -> (i64, i64) {
    pycs::table.filter(pycs::number.eq(number)).select((pycs::id, pycs::request_id)).first(c).unwrap_or((-1, -1))
}

fn state(c: &mut DbConn, request: i64) -> String {
    hubgate::hub::models::request(c, request).map(|r| r.state).unwrap_or_default()
}

db_test!(the_month_list_sent_to_accounting_is_b6, |app| {
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    app.create_user("leader@ipos.vn", &[Role::Leader]);
    app.create_user("kythuat@ipos.vn", &[Role::Technician]);
    app.create_user("ketoan@ipos.vn", &[Role::Accountant]);
    let tech = Actor::user(3, "kythuat@ipos.vn");
    let accountant = Actor::user(4, "ketoan@ipos.vn");
    let outbound = app.state.config.outbound.clone();
    let (replied, invoiced, deploying, november) = app.with_conn(|c| {
        let reply = |c: &mut DbConn, number: &str| {
            let (id, rid) = pyc_of(c, number);
            let mut draft = pyc::reply_draft(c, id, "Kỹ thuật").unwrap_or_else(|e| panic!("{e:?}"));
            draft.to = "doitac@example.vn".into();
            let v = pyc_models::pyc(c, id).map(|p| p.version).unwrap_or(0);
            pyc::send_reply(c, &outbound, &tech, id, v, &draft).unwrap_or_else(|e| panic!("{e:?}"));
            (id, rid)
        };
        let a = deployed(c, &app, "MOMO", "Phở Thìn", "A1", utc("2026-10-05 03:00"));
        let b = deployed(c, &app, "MOMO", "Bún Chả Hương", "B1", utc("2026-10-06 03:00"));
        let d = deployed(c, &app, "VNPAY", "Cơm Tấm Cali", "D1", utc("2026-10-07 03:00"));
        let n = deployed(c, &app, "VNPAY", "Cà phê Mộc", "N1", utc("2026-11-02 03:00"));
        let (_, replied) = reply(c, &a);
        let (bid, invoiced) = reply(c, &b);
        let v = pyc_models::pyc(c, bid).map(|p| p.version).unwrap_or(0);
        pyc::record_invoice(c, &accountant, bid, v, "0000777", utc("2026-10-20 03:00"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (_, november) = reply(c, &n);
        (replied, invoiced, pyc_of(c, &d).1, november)
    });
    let system = Actor::system("test");
    let october = Month::parse("2026-10").unwrap_or_else(|| panic!("month"));
    let moved = app.with_conn(|c| hubgate::reports::report_to_accounting(c, &outbound, &system, october));
    assert_eq!(moved.unwrap_or_else(|e| panic!("{e:?}")), Some(1), "only the replied October request moves");
    app.with_conn(|c| {
        assert_eq!(state(c, replied), "reported");
        assert_eq!(state(c, invoiced), "invoiced", "an invoiced request stays closed");
        assert_eq!(state(c, deploying), "deploying", "listed, but the partner has not had its reply yet");
        assert_eq!(state(c, november), "replied", "next month's list will carry it");
        use hubgate::db::schema::audit_log;
        let why: Vec<Option<String>> = audit_log::table
            .filter(audit_log::entity_type.eq("request"))
            .filter(audit_log::entity_id.eq(replied.to_string()))
            .order(audit_log::id.desc())
            .select(audit_log::after_json)
            .limit(1)
            .load(c)
            .unwrap_or_default();
        assert!(
            why.first().cloned().flatten().unwrap_or_default().contains("danh sách điểm kết nối tháng 10/2026"),
            "{why:?}"
        );
    });
    // Sent once: a second run neither mails nor moves anything.
    let again = app.with_conn(|c| hubgate::reports::report_to_accounting(c, &outbound, &system, october));
    assert_eq!(again.unwrap_or_else(|e| panic!("{e:?}")), None);
});

db_test!(a_month_of_thousands_streams_into_sheets_with_hostile_text_intact, |app| {
    use hubgate::db::schema::{merchants, points, requests};
    // Ids as the bench seeds them: request, point and PYC 10,000,000 + i.
    const BASE: i64 = 10_000_000;
    let october = Month { year: 2026, month: 10 };
    let merchant = "Phở\u{1} \"Bò\" & <Chả>\r\nGiò\u{FFFE}".to_string();
    let point = "  Điểm có khoảng trắng ".to_string();
    let pos = "_x0041_ & _x00_".to_string();
    let address = "ầ".repeat(40_000);
    let (expected, partner, pyc) = app.with_conn(|c| {
        // Over a thousand rows a partner: past the rows each sheet's widths come from.
        let expected = hubgate::bench::seed_month(c, 7_000).unwrap_or_else(|e| panic!("{e}"));
        let id = BASE + 6_000;
        let merchant_id: i64 = points::table.find(id).select(points::merchant_id).first(c).unwrap_or(-1);
        diesel::update(merchants::table.find(merchant_id)).set(merchants::name.eq(&merchant)).execute(c).unwrap_or(0);
        diesel::update(points::table.find(id))
            .set((points::name.eq(&point), points::address.eq(&address)))
            .execute(c)
            .unwrap_or(0);
        diesel::update(pycs::table.find(id)).set(pycs::pos_id.eq(&pos)).execute(c).unwrap_or(0);
        let partner: i64 = requests::table.find(id).select(requests::partner_id).first(c).unwrap_or(-1);
        diesel::update(partners::table.find(partner)).set(partners::code.eq("Đối/tác:[2026]")).execute(c).unwrap_or(0);
        let pyc: String = pycs::table.find(id).select(pycs::number).first(c).unwrap_or_default();
        (expected, partner, pyc)
    });
    assert!(partner > 0 && !pyc.is_empty());
    let (bytes, listed) = app.with_conn(|c| workbook(c, october)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(listed.total(), expected);
    assert_eq!(listed.request_ids.len(), expected);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    let names = book.sheet_names();
    assert_eq!(names.len(), listed.counts.len() + 1);
    assert_eq!(names[0], "Tổng hợp");
    assert!(names.contains(&"Đối_tác__2026_".to_string()), "a sheet name Excel accepts: {names:?}");
    let mut rows = 0;
    for (name, (code, n)) in names[1..].iter().zip(&listed.counts) {
        let sheet = book.worksheet_range(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sheet.height(), n + 1, "{name}: the header and every connection of {code}");
        let times: Vec<NaiveDateTime> =
            (1..sheet.height()).filter_map(|r| sheet.get_value((r as u32, 7)).and_then(|d| d.as_datetime())).collect();
        assert_eq!(times.len(), *n, "{name}: every row has its go-live time");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{name}: rows by go-live time");
        assert!((1..sheet.height()).all(|r| text(sheet.get_value((r as u32, 0))) == *code));
        rows += n;
    }
    assert_eq!(rows, expected);
    let sheet = book.worksheet_range("Đối_tác__2026_").unwrap_or_else(|e| panic!("{e}"));
    let line = (1..sheet.height() as u32).find(|r| text(sheet.get_value((*r, 8))) == pyc);
    let line = line.unwrap_or_else(|| panic!("{pyc} is on its partner's sheet"));
    let cell = |c: u32| text(sheet.get_value((line, c)));
    assert_eq!(cell(1), merchant, "controls, quotes and markup read back as typed");
    assert_eq!(cell(2), point, "spaces at both ends are kept");
    assert_eq!(cell(3), "ầ".repeat(32_767), "cut at Excel's limit of 32,767 characters");
    assert_eq!(cell(5), pos, "a literal _x0041_ is not taken for an escape");
    let summary = book.worksheet_range("Tổng hợp").unwrap_or_else(|e| panic!("{e}"));
    let total = listed.counts.len() as u32 + 3;
    assert_eq!(
        (text(summary.get_value((total, 0))), text(summary.get_value((total, 1)))),
        ("Tổng cộng".to_string(), expected.to_string())
    );
});
