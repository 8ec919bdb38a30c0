//! The durable queue and outgoing mail, with a real SMTP server and the real binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use hubgate::accounts::Role;
use hubgate::audit::Actor;
use hubgate::db::DbConn;
use hubgate::db::schema::{audit_log, jobs, mail_outbox};
use hubgate::mail::outbound::{OutgoingMail, queue_mail};
use hubgate::worker::runner::{Registry, WorkerOptions, run};
use hubgate::worker::{JobOptions, enqueue};

fn options(name: &str, concurrency: usize) -> WorkerOptions {
    WorkerOptions {
        name: name.into(),
        concurrency,
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(20),
        job_timeout: Duration::from_secs(20),
        grace: Duration::from_secs(5),
    }
}

/// Runs a worker until `done` says so (or 30 s pass), then stops it.
async fn work_until(app: &crate::support::TestApp, registry: Registry, done: impl Fn(&mut DbConn) -> bool) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run(app.state.services.clone(), Arc::new(registry), options("test", 8), rx));
    let started = Instant::now();
    while !app.with_conn(|c| done(c)) {
        assert!(started.elapsed() < Duration::from_secs(30), "worker did not get there in 30 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = stop.send(true);
    let _ = worker.await;
}

fn pending(c: &mut DbConn) -> bool {
    hubgate::worker::models::pending(c).unwrap_or(1) == 0
}

/// How many times the job's history (as its page shows it) says it succeeded.
fn succeeded(app: &crate::support::TestApp, job: i64) -> i64 {
    app.with_conn(|c| {
        let job = hubgate::worker::models::job(c, job)?;
        let history = hubgate::worker::models::events_of(c, &job)?;
        diesel::QueryResult::Ok(history.iter().filter(|e| e.1 == "succeeded").count() as i64)
    })
    .unwrap_or(-1)
}

db_test!(rolled_back_never_runs_committed_runs_once, |app| {
    let rolled_back: Result<(), diesel::result::Error> = app.with_conn(|c| {
        c.transaction(|c| {
            enqueue(c, "debug.noop", &serde_json::json!({}), &JobOptions::default())
                .map_err(|_| diesel::result::Error::RollbackTransaction)?;
            Err(diesel::result::Error::RollbackTransaction)
        })
    });
    assert!(rolled_back.is_err());
    assert_eq!(
        app.with_conn(|c| jobs::table.count().get_result::<i64>(c)).unwrap_or(-1),
        0,
        "nothing survives a rollback"
    );

    let id = app
        .with_conn(|c| enqueue(c, "debug.noop", &serde_json::json!({}), &JobOptions::default()))
        .ok()
        .flatten()
        .unwrap_or(-1);
    work_until(&app, hubgate::app::registry(&app.state.config), pending).await;
    let job = app.with_conn(|c| hubgate::worker::models::job(c, id)).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.done_at.is_some());
    assert_eq!(job.attempts, 1);
    assert_eq!(succeeded(&app, id), 1);
});

db_test!(unique_keys_and_scheduler_ticks_run_once, |app| {
    let opts = JobOptions { unique_key: Some("mail:42".into()), ..Default::default() };
    let first = app.with_conn(|c| enqueue(c, "debug.noop", &serde_json::json!({}), &opts)).ok().flatten();
    let second = app.with_conn(|c| enqueue(c, "debug.noop", &serde_json::json!({}), &opts)).ok().flatten();
    assert!(first.is_some());
    assert_eq!(second, None);
    // Two nodes ticking the same schedule in the same slot.
    use hubgate::worker::schedule::{Every, Schedule, tick};
    let schedules = vec![Schedule {
        name: "report".into(),
        every: Every::Monthly { day: 1, hour: 8, minute: 0 },
        kind: "debug.noop".into(),
        payload: serde_json::json!({}),
    }];
    let now = hubgate::db::now();
    let a = app.with_conn(|c| tick(c, &schedules, now)).unwrap_or(9);
    let b = app.with_conn(|c| tick(c, &schedules, now + chrono::Duration::seconds(30))).unwrap_or(9);
    assert_eq!((a, b), (1, 0));
    let keyed: i64 = app
        .with_conn(|c| jobs::table.filter(jobs::unique_key.like("schedule:report:%")).count().get_result(c))
        .unwrap_or(0);
    assert_eq!(keyed, 1);
});

db_test!(failures_back_off_then_die_and_an_admin_retries, |app| {
    let mut registry = hubgate::app::registry(&app.state.config);
    registry.register("test.fail", |_ctx| async { Err("đối tác trả lỗi 500".to_string()) });
    let id = app
        .with_conn(|c| {
            enqueue(c, "test.fail", &serde_json::json!({}), &JobOptions { max_attempts: 2, ..Default::default() })
        })
        .ok()
        .flatten()
        .unwrap_or(-1);
    let failed_once = move |c: &mut DbConn| {
        hubgate::worker::models::job(c, id).map(|j| j.attempts == 1 && j.locked_until.is_none()).unwrap_or(false)
    };
    work_until(&app, registry.clone(), failed_once).await;
    let job = app.with_conn(|c| hubgate::worker::models::job(c, id)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.last_error.as_deref(), Some("đối tác trả lỗi 500"));
    assert!(job.run_at > hubgate::db::now() + chrono::Duration::seconds(3), "retried later, with backoff");
    // Time passes: make it due again; the second failure is the last.
    app.with_conn(|c| diesel::update(jobs::table.find(id)).set(jobs::run_at.eq(hubgate::db::now())).execute(c))
        .unwrap_or(0);
    let dead = move |c: &mut DbConn| hubgate::worker::models::job(c, id).map(|j| j.dead_at.is_some()).unwrap_or(false);
    work_until(&app, registry.clone(), dead).await;

    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let admin = app.login("admin@ipos.vn").await;
    let page = admin.get("/admin/jobs").await;
    assert!(page.body.contains("Việc hỏng (1)"), "{}", page.body);
    assert!(page.body.contains("đối tác trả lỗi 500"));
    assert_eq!(admin.post(&format!("/admin/jobs/{id}/retry"), &[]).await.status, 303);
    let job = app.with_conn(|c| hubgate::worker::models::job(c, id)).unwrap_or_else(|e| panic!("{e}"));
    assert!(job.dead_at.is_none() && job.attempts == 0, "back in the queue with fresh attempts");
    let history = admin.get(&format!("/admin/jobs/{id}")).await;
    assert!(history.body.contains("failed") && history.body.contains("dead") && history.body.contains("retried"));
    let audited: i64 = app
        .with_conn(|c| {
            audit_log::table
                .filter(audit_log::entity_type.eq("job"))
                .filter(audit_log::action.eq("retry"))
                .count()
                .get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(audited, 1);
    // Discard it for good after it dies again.
    app.with_conn(|c| {
        diesel::update(jobs::table.find(id))
            .set((jobs::dead_at.eq(Some(hubgate::db::now())), jobs::attempts.eq(2)))
            .execute(c)
    })
    .unwrap_or(0);
    assert_eq!(admin.post(&format!("/admin/jobs/{id}/discard"), &[]).await.status, 303);
    assert!(app.with_conn(|c| hubgate::worker::models::job(c, id)).map(|j| j.done_at.is_some()).unwrap_or(false));
    // Done, but by a person: its history says discarded, never succeeded.
    let history = admin.get(&format!("/admin/jobs/{id}")).await;
    assert!(history.body.contains("<b>discarded</b>"), "{}", history.body);
    assert!(!history.body.contains("<b>succeeded</b>"), "{}", history.body);
});

fn vietnamese_mail() -> OutgoingMail {
    OutgoingMail {
        to: vec!["Đối tác MoMo <hub@momo.vn>".into()],
        cc: vec!["lan@phothin.vn".into()],
        subject: "RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc".into(),
        text: "Kính gửi MoMo,\n\niPOS xác nhận mở cổng kết nối HUB cho Phở Thìn.\n\nTrân trọng,\niPOS".into(),
        in_reply_to: Some("a03-leader@momo.vn".into()),
        references: vec!["A01.outlook@momo.vn".into(), "a03-leader@momo.vn".into()],
        attachments: vec![("ảnh kết nối.png".into(), "image/png".into(), vec![0x89, b'P', b'N', b'G', 1, 2, 3])],
        request_id: None,
    }
}

#[actix_web::test]
async fn mail_reaches_a_real_smtp_server_threaded_and_encoded() {
    let (port, inbox, _server) = crate::smtp::start(0).await;
    let app = crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| {
        c.outbound.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    })
    .await
    .unwrap_or_else(|| panic!("sqlite"));
    let cfg = app.state.config.outbound.clone();
    let id = app
        .with_conn(|c| queue_mail(c, &cfg, &Actor::system("test"), &vietnamese_mail()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    work_until(&app, hubgate::app::registry(&app.state.config), pending).await;
    let received = inbox.received();
    assert_eq!(received.len(), 1);
    let msg = mail_parser::MessageParser::default().parse(&received[0]).unwrap_or_else(|| panic!("unparsable"));
    assert_eq!(msg.subject(), Some("RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"));
    assert_eq!(msg.in_reply_to().as_text(), Some("a03-leader@momo.vn"));
    let refs: Vec<String> =
        msg.references().as_text_list().map(|l| l.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    assert_eq!(refs, vec!["A01.outlook@momo.vn", "a03-leader@momo.vn"]);
    assert_eq!(msg.from().and_then(|a| a.first()).and_then(|a| a.name()), Some("iPOS Hub"));
    assert_eq!(msg.to().and_then(|a| a.first()).and_then(|a| a.name()), Some("Đối tác MoMo"));
    assert!(msg.body_text(0).unwrap_or_default().contains("xác nhận mở cổng"));
    assert!(msg.body_html(0).unwrap_or_default().contains("<p>Kính gửi MoMo,</p>"));
    let att = msg.attachments().next().unwrap_or_else(|| panic!("no attachment"));
    use mail_parser::MimeHeaders;
    assert_eq!(att.attachment_name(), Some("ảnh kết nối.png"));
    assert_eq!(att.contents(), &[0x89, b'P', b'N', b'G', 1, 2, 3]);
    let our_id = msg.message_id().unwrap_or_default().to_string();
    assert!(our_id.ends_with("@ipos.vn"), "{our_id}");
    let (status, stored_id): (String, String) = app
        .with_conn(|c| mail_outbox::table.find(id).select((mail_outbox::status, mail_outbox::message_id)).first(c))
        .unwrap_or_default();
    assert_eq!(status, "sent");
    assert_eq!(stored_id, our_id, "the Message-ID was fixed when the mail was queued");

    // The sent-mail pages show it.
    app.create_user("sale@ipos.vn", &[Role::Sale]);
    let sale = app.login("sale@ipos.vn").await;
    let list = sale.get("/mail/sent").await;
    assert!(list.body.contains("Phở Thìn Lò Đúc") && list.body.contains("Đã gửi"), "{}", list.body);
    assert!(sale.get(&format!("/mail/sent/{id}")).await.body.contains(&our_id));
}

#[actix_web::test]
async fn smtp_outage_retries_and_delivers_once() {
    // A port with nobody listening yet: bound (so no one else can take it) but not
    // listening, so connections are refused; the SMTP server listens on it later.
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("bind: {e}"));
    let port = socket.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    let app = crate::support::TestApp::start_with(hubgate::db::Backend::Sqlite, |c| {
        c.outbound.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    })
    .await
    .unwrap_or_else(|| panic!("sqlite"));
    let cfg = app.state.config.outbound.clone();
    let id = app
        .with_conn(|c| queue_mail(c, &cfg, &Actor::system("test"), &vietnamese_mail()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let attempted = |c: &mut DbConn| {
        mail_outbox::table.select(mail_outbox::attempts).first::<i64>(c).map(|a| a >= 1).unwrap_or(false)
    };
    work_until(&app, hubgate::app::registry(&app.state.config), attempted).await;
    let (status, error): (String, Option<String>) = app
        .with_conn(|c| mail_outbox::table.find(id).select((mail_outbox::status, mail_outbox::error)).first(c))
        .unwrap_or_default();
    assert_eq!(status, "queued", "kept for the next attempt");
    assert!(error.is_some());

    // The server comes back but refuses for now: still nothing lost.
    let (_, inbox, _server) = crate::smtp::serve(socket.listen(16).unwrap_or_else(|e| panic!("listen: {e}")));
    inbox.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let due = |c: &mut DbConn| diesel::update(jobs::table).set(jobs::run_at.eq(hubgate::db::now())).execute(c);
    app.with_conn(due).unwrap_or(0);
    let twice = |c: &mut DbConn| {
        mail_outbox::table.select(mail_outbox::attempts).first::<i64>(c).map(|a| a >= 2).unwrap_or(false)
    };
    work_until(&app, hubgate::app::registry(&app.state.config), twice).await;
    assert!(inbox.received().is_empty());

    inbox.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    app.with_conn(due).unwrap_or(0);
    work_until(&app, hubgate::app::registry(&app.state.config), pending).await;
    assert_eq!(inbox.received().len(), 1, "delivered exactly once");
    // A replayed job (say, after a lost acknowledgement) does not send it again.
    app.with_conn(|c| {
        diesel::update(jobs::table)
            .set((jobs::done_at.eq(None::<chrono::NaiveDateTime>), jobs::run_at.eq(hubgate::db::now())))
            .execute(c)
    })
    .unwrap_or(0);
    work_until(&app, hubgate::app::registry(&app.state.config), pending).await;
    assert_eq!(inbox.received().len(), 1);
}

#[test]
fn a_killed_worker_loses_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}/hub.db", dir.path().display());
    let pool = hubgate::db::pool(&url, 2).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
    hubgate::app::migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    let id = enqueue(&mut conn, "debug.sleep", &serde_json::json!({"secs": 2.0}), &JobOptions::default())
        .ok()
        .flatten()
        .unwrap_or(-1);
    let worker = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
            .arg("worker")
            .env("DATABASE_URL", &url)
            .env("HUBGATE_DATA_DIR", dir.path())
            .env("HUBGATE_LOG", "warn")
            .env("HUBGATE_WORKER_LEASE_SECS", "4")
            .env("HUBGATE_WORKER_POLL_MS", "50")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"))
    };
    let job = |conn: &mut DbConn| hubgate::worker::models::job(conn, id).unwrap_or_else(|e| panic!("{e}"));
    let wait = |what: &str, conn: &mut DbConn, ok: &dyn Fn(&hubgate::worker::models::Job) -> bool| {
        let started = Instant::now();
        while !ok(&job(conn)) {
            assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut first = worker();
    wait("the first claim", &mut conn, &|j| j.locked_by.is_some());
    std::thread::sleep(Duration::from_millis(300));
    let _ = first.kill(); // SIGKILL: no graceful anything
    let _ = first.wait();
    assert!(job(&mut conn).done_at.is_none(), "killed mid-job");

    let mut second = worker();
    wait("the job to finish after the lease expired", &mut conn, &|j| j.done_at.is_some());
    let _ = second.kill();
    let _ = second.wait();
    let j = job(&mut conn);
    assert_eq!(j.attempts, 2, "run again after the crash");
    let history = hubgate::worker::models::events_of(&mut conn, &j).unwrap_or_default();
    assert_eq!(history.iter().filter(|e| e.1 == "succeeded").count(), 1, "completed exactly once: {history:?}");
}

// A batch producer (the notifier's page of transactions) enqueues together: a taken
// key is skipped as `enqueue` skips it, within the batch too, and a rollback keeps none.
db_test!(jobs_enqueued_together_keep_their_keys_and_run_once, |app| {
    use hubgate::worker::enqueue_many;
    let keyed = |k: &str| JobOptions { unique_key: Some(k.into()), ..JobOptions::default() };
    let first = app
        .with_conn(|c| enqueue(c, "debug.noop", &serde_json::json!({"n": 0}), &keyed("taken")))
        .ok()
        .flatten()
        .unwrap_or(-1);
    let batch = vec![
        (serde_json::json!({"n": 1}), keyed("taken")),
        (serde_json::json!({"n": 2}), keyed("fresh")),
        (serde_json::json!({"n": 3}), keyed("fresh")),
        (serde_json::json!({"n": 4}), JobOptions::default()),
        (serde_json::json!({"n": 5}), JobOptions { max_attempts: 0, ..JobOptions::default() }),
    ];
    let rolled_back: Result<usize, hubgate::error::AppError> = app.with_conn(|c| {
        hubgate::db::tx(c, |c| {
            enqueue_many(c, "debug.noop", &batch)?;
            Err(hubgate::error::AppError::Validation("bỏ".into()))
        })
    });
    assert!(rolled_back.is_err());
    assert_eq!(app.with_conn(|c| jobs::table.count().get_result::<i64>(c)).unwrap_or(-1), 1);

    let added = app.with_conn(|c| enqueue_many(c, "debug.noop", &batch)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added, 3, "the taken key and the second \"fresh\" are skipped");
    let payloads: Vec<(String, Option<String>, i64)> = app
        .with_conn(|c| {
            jobs::table.order(jobs::id.asc()).select((jobs::payload, jobs::unique_key, jobs::max_attempts)).load(c)
        })
        .unwrap_or_default();
    assert_eq!(
        payloads,
        vec![
            (r#"{"n":0}"#.to_string(), Some("taken".to_string()), 8),
            (r#"{"n":2}"#.to_string(), Some("fresh".to_string()), 8),
            (r#"{"n":4}"#.to_string(), None, 8),
            (r#"{"n":5}"#.to_string(), None, 1),
        ]
    );
    work_until(&app, hubgate::app::registry(&app.state.config), pending).await;
    let ids: Vec<i64> = app.with_conn(|c| jobs::table.select(jobs::id).load(c)).unwrap_or_default();
    assert!(ids.contains(&first));
    for id in ids {
        assert_eq!(succeeded(&app, id), 1, "job {id}");
    }
    // The job's page shows when and by which worker it succeeded.
    app.create_user("admin@ipos.vn", &[Role::Admin]);
    let admin = app.login("admin@ipos.vn").await;
    let page = admin.get(&format!("/admin/jobs/{first}")).await;
    assert!(page.body.contains("Xong") && page.body.contains("<b>succeeded</b> · test"), "{}", page.body);
});

#[actix_web::test]
async fn two_workers_on_postgres_run_each_job_once() {
    let Some(app) = crate::support::TestApp::start_pg().await else {
        return;
    };
    let n = 10_000;
    app.with_conn(|c| {
        c.transaction(|c| {
            let batch: Vec<_> = (0..n)
                .map(|_| hubgate::worker::models::NewJob {
                    kind: "debug.noop",
                    payload: "{}",
                    unique_key: None,
                    run_at: hubgate::db::now(),
                    max_attempts: 3,
                    created_at: hubgate::db::now(),
                })
                .collect();
            for chunk in batch.chunks(1000) {
                hubgate::worker::models::insert_many(c, chunk)?;
            }
            diesel::QueryResult::Ok(())
        })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let a = tokio::spawn(run(
        app.state.services.clone(),
        Arc::new(hubgate::app::registry(&app.state.config)),
        options("node-a", 32),
        rx.clone(),
    ));
    let b = tokio::spawn(run(
        app.state.services.clone(),
        Arc::new(hubgate::app::registry(&app.state.config)),
        options("node-b", 32),
        rx,
    ));
    let started = Instant::now();
    while !app.with_conn(pending) {
        assert!(started.elapsed() < Duration::from_secs(120), "not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = (a.await, b.await);
    // A job two workers both claimed would have two attempts (and have run twice).
    let finished: Vec<(i64, bool, Option<String>)> = app
        .with_conn(|c| jobs::table.select((jobs::attempts, jobs::done_at.is_not_null(), jobs::locked_by)).load(c))
        .unwrap_or_default();
    assert_eq!(finished.len(), n);
    assert!(finished.iter().all(|(_, done, _)| *done), "every job done");
    let twice = finished.iter().filter(|(attempts, _, _)| *attempts != 1).count();
    assert_eq!(twice, 0, "every job claimed and run exactly once");
    // Which node ran how many is the scheduler's business (on a loaded machine one may
    // take them all); that each run was by one of the two is ours.
    assert!(
        finished
            .iter()
            .all(|(_, _, w)| w.as_deref().is_some_and(|w| w.starts_with("node-a") || w.starts_with("node-b"))),
        "{:?}",
        finished.iter().map(|f| f.2.clone()).collect::<std::collections::BTreeSet<_>>()
    );
}

/// SIGTERM: no new claims; a running job finishes within the grace period, one that
/// cannot is released for another worker without losing its attempt.
#[test]
fn sigterm_finishes_or_releases_running_jobs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}/hub.db", dir.path().display());
    let pool = hubgate::db::pool(&url, 2).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
    hubgate::app::migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    let run_one = |conn: &mut DbConn, secs: f64, grace: &str| {
        let id = enqueue(conn, "debug.sleep", &serde_json::json!({"secs": secs}), &JobOptions::default())
            .ok()
            .flatten()
            .unwrap_or(-1);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
            .arg("worker")
            .env("DATABASE_URL", &url)
            .env("HUBGATE_DATA_DIR", dir.path())
            .env("HUBGATE_LOG", "warn")
            .env("HUBGATE_WORKER_POLL_MS", "50")
            .env("HUBGATE_WORKER_GRACE_SECS", grace)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        let started = Instant::now();
        while hubgate::worker::models::job(conn, id).map(|j| j.locked_by.is_none()).unwrap_or(true) {
            assert!(started.elapsed() < Duration::from_secs(20), "never claimed");
            std::thread::sleep(Duration::from_millis(30));
        }
        let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(term.map(|s| s.success()).unwrap_or(false));
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "clean exit on SIGTERM");
        hubgate::worker::models::job(conn, id).unwrap_or_else(|e| panic!("{e}"))
    };
    let finished = run_one(&mut conn, 0.5, "10");
    assert!(finished.done_at.is_some(), "finished within the grace period");
    let released = run_one(&mut conn, 30.0, "0");
    assert!(released.done_at.is_none());
    assert!(released.locked_until.is_none(), "lease given back at once");
    assert_eq!(released.attempts, 0, "the interrupted attempt does not count");
}

mod a_sent_mail_downloads_as_it_went_out {
    use super::*;

    async fn run(backend: hubgate::db::Backend) {
        let (port, inbox, _server) = crate::smtp::start(0).await;
        let Some(app) = crate::support::TestApp::start_with(backend, |c| {
            c.outbound.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        })
        .await
        else {
            return;
        };
        let cfg = app.state.config.outbound.clone();
        let id = app
            .with_conn(|c| queue_mail(c, &cfg, &Actor::system("test"), &vietnamese_mail()))
            .unwrap_or_else(|e| panic!("{e:?}"));
        // Fifty more (never sent: no worker runs after this one), so the list has two pages.
        work_until(&app, hubgate::app::registry(&app.state.config), pending).await;
        let more: Vec<i64> = (0..50)
            .map(|n| {
                let mail = OutgoingMail::simple(
                    vec![format!("kt{n}@ipos.vn")],
                    format!("Thông báo số {n:02}"),
                    "Nội dung.".into(),
                );
                app.with_conn(|c| queue_mail(c, &cfg, &Actor::system("test"), &mail))
                    .unwrap_or_else(|e| panic!("{e:?}"))
            })
            .collect();
        app.create_user("sale@ipos.vn", &[Role::Sale]);
        app.create_user("kythuat@ipos.vn", &[Role::Technician]);
        let sale = app.login("sale@ipos.vn").await;

        let page = sale.get(&format!("/mail/sent/{id}")).await;
        assert!(page.body.contains(&format!("href=\"/mail/sent/{id}/raw\"")), "{}", page.body);
        let (status, headers, raw) = sale.fetch(&format!("/mail/sent/{id}/raw")).await;
        assert_eq!(status, 200);
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(header("content-type"), "message/rfc822");
        assert!(
            header("content-disposition").contains(&format!("thu-gui-{id}.eml")),
            "{}",
            header("content-disposition")
        );
        // Byte for byte what is stored and what the partner's server received.
        let stored: Vec<u8> =
            app.with_conn(|c| mail_outbox::table.find(id).select(mail_outbox::raw).first(c)).unwrap_or_default();
        assert_eq!(raw, stored);
        let received = inbox.received();
        assert_eq!(received.len(), 1);
        // SMTP's DATA ends the message on a line break of its own (the stored mail has none).
        let wire = received[0].strip_suffix(b"\r\n").unwrap_or(&received[0]);
        assert!(raw == wire, "the download is the mail as it went out ({} and {} bytes)", raw.len(), wire.len());
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap_or_else(|| panic!("unparsable"));
        assert_eq!(parsed.subject(), Some("RE: [MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"));
        assert_eq!(parsed.attachment_count(), 1);
        // Sales and leaders only; a mail that does not exist is not found.
        assert_eq!(app.login("kythuat@ipos.vn").await.fetch(&format!("/mail/sent/{id}/raw")).await.0, 403);
        assert_eq!(sale.fetch("/mail/sent/987654/raw").await.0, 404);

        // The list pages, newest first, and says where it is.
        let first = sale.get("/mail/sent").await;
        assert!(first.body.contains("51 thư · trang 1/2"), "{}", first.body);
        let (ids, sizes) = crate::support::all_pages(&sale, "/mail/sent", "/mail/sent/").await;
        assert_eq!(sizes, [50, 1]);
        let mut expected: Vec<i64> = more.into_iter().rev().collect();
        expected.push(id);
        assert_eq!(ids, expected);
        let last = sale.get("/mail/sent?page=2").await;
        assert_eq!(crate::support::pager_link(&last, "‹ Trang trước").as_deref(), Some("/mail/sent?page=1"));
    }

    crate::on_both_backends!(run);
}
