//! `hubgate bench ...`: throughput figures printed for the issue notes. Each bench
//! runs against a throw-away database (a temp SQLite file, or a fresh PostgreSQL
//! database created and dropped under the given server URL).

use std::time::Instant;

use anyhow::Context;
use diesel::{Connection, RunQueryDsl};

use crate::config::Config;
use crate::db::{self, Pool};

pub mod all;
pub mod figures;
pub mod web;

use figures::{Figure, Target};

/// A scratch database; the PostgreSQL one is dropped when this goes away.
pub struct Scratch {
    pub pool: Pool,
    pub config: Config,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut conn) = diesel::pg::PgConnection::establish(admin)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
        }
    }
}

/// A migrated scratch database: SQLite when `pg_admin` is None.
pub fn scratch(pg_admin: Option<&str>) -> anyhow::Result<Scratch> {
    let dir = tempfile::tempdir()?;
    let (url, pg) = match pg_admin {
        None => (format!("sqlite://{}/bench.db", dir.path().display()), None),
        Some(admin) => {
            let name = format!("hubgate_bench_{}", std::process::id());
            let mut conn = diesel::pg::PgConnection::establish(admin).context("bench: cannot reach PostgreSQL")?;
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn)?;
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
            (format!("{base}/{name}"), Some((admin.to_string(), name)))
        }
    };
    let env = vec![
        ("DATABASE_URL".to_string(), url.clone()),
        ("HUBGATE_DATA_DIR".to_string(), dir.path().display().to_string()),
    ];
    let config = Config::from_sources(None, &env)?;
    let pool = db::pool(&url, 8)?;
    let mut conn = pool.get()?;
    crate::app::migrate(&mut conn)?;
    drop(conn);
    Ok(Scratch { pool, config, _dir: dir, pg })
}

const PARTNERS: [&str; 6] = ["momo.vn", "vnpay.vn", "zalopay.vn", "giftpop.vn", "meete.vn", "jamja.vn"];
const SHOPS: [&str; 8] = [
    "Phở Thìn",
    "Bún Chả Hương Liên",
    "Cơm Tấm Cali",
    "Highlands Coffee",
    "The Coffee House",
    "Bánh Mì Huỳnh Hoa",
    "Lẩu Phan",
    "Gà Rán Popeyes",
];

/// Message `i` of a generated corpus: threads of five (request, merchant reply,
/// leader approval, subject-only reply, forwarded confirmation).
pub fn generated_mail(i: usize) -> Vec<u8> {
    let thread = i / 5;
    let step = i % 5;
    let domain = PARTNERS[thread % PARTNERS.len()];
    let shop = SHOPS[thread % SHOPS.len()];
    let subject = format!("Mở cổng kết nối HUB - {shop} chi nhánh {thread}");
    let root = format!("<t{thread}-0@{domain}>");
    let (from, subj, extra, body) = match step {
        0 => (
            format!("hub@{domain}"),
            subject.clone(),
            String::new(),
            format!(
                "Kính gửi iPOS,\nĐề nghị mở cổng kết nối HUB cho merchant:\nTên quán: {shop}\nĐịa chỉ: {thread} Lê Lợi, Quận 1, TP.HCM\nNgười liên hệ: Chị Lan - 09{:08}\n",
                thread % 100_000_000
            ),
        ),
        1 => (
            format!("owner{thread}@shop{thread}.vn"),
            format!("Re: {subject}"),
            format!("In-Reply-To: {root}\r\nReferences: {root}\r\n"),
            "Bên em xác nhận đồng ý mở cổng kết nối.\n\nVào ngày đó đã viết:\n> Đề nghị mở cổng\n".into(),
        ),
        2 => (format!("leader@{domain}"), format!("TL: {subject}"), String::new(), "Đồng ý, approve.\n".into()),
        3 => {
            ("sale@ipos.vn".to_string(), format!("RE: {subject}"), String::new(), "iPOS đã nhận đủ xác nhận.\n".into())
        }
        _ => (
            format!("hub@{domain}"),
            format!("Fwd: {subject}"),
            format!("References: {root}\r\n"),
            format!(
                "Gửi iPOS.\n\n---------- Forwarded message ---------\nFrom: Chủ quán <owner{thread}@shop{thread}.vn>\nSubject: Xác nhận\n\nChúng tôi đồng ý kết nối.\n"
            ),
        ),
    };
    let encoded_subject = format!("=?utf-8?B?{}?=", base64_engine(subj.as_bytes()));
    format!(
        "From: {from}\r\nTo: hub@ipos.vn\r\nSubject: {encoded_subject}\r\nDate: Mon, 2 Nov 2026 09:{:02}:00 +0700\r\nMessage-ID: <t{thread}-{step}@{domain}>\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        step * 10
    )
    .into_bytes()
}

fn base64_engine(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `hubgate bench mail`: `count` generated messages ingested three ways, each into a
/// fresh database: one by one on one connection (what `POST /inbound/mail` does per
/// request: two commits per message), in batches ([`batch::ingest_batch`]: how mail
/// comes in bulk — CLI import, Maildir, a multi-file upload — two commits per batch),
/// and one by one from `senders` threads at once (concurrent `/inbound/mail` posts).
/// The targets are on the batch figure.
///
/// [`batch::ingest_batch`]: crate::mail::inbound::batch::ingest_batch
pub fn mail(pg_admin: Option<&str>, count: usize, senders: usize) -> anyhow::Result<Vec<Figure>> {
    use crate::mail::inbound::{batch, service};
    let mut figures = Vec::new();
    let backends = backends(pg_admin);
    let corpus: Vec<Vec<u8>> = (0..count).map(generated_mail).collect();
    let e = |e: crate::error::AppError| anyhow::anyhow!("{e}");
    for backend in backends {
        let label = figures::database(backend);
        let rate = |secs: f64| count as f64 / secs;

        // One by one, as the HTTP endpoint stores each posted message.
        let (secs, stored) = {
            let s = scratch(backend)?;
            let mut conn = s.pool.get()?;
            let started = Instant::now();
            let known = service::Known::load(&mut conn).map_err(e)?;
            let mut stored = 0usize;
            for raw in &corpus {
                let r = service::ingest_with(&mut conn, &s.config.mail, &known, raw, "bench", None).map_err(e)?;
                stored += usize::from(r.status == "stored");
            }
            (started.elapsed().as_secs_f64(), stored)
        };
        println!(
            "mail ingest, one by one [{label}]: {count} messages in {secs:.2} s = {:.0} messages/s ({stored} stored)",
            rate(secs)
        );
        figures.push(
            Figure::new("mail ingest, one by one", label, rate(secs), "messages/s")
                .note(format!("{count} messages, {stored} stored; two commits each (POST /inbound/mail)")),
        );

        // In batches, as bulk mail is stored.
        let (secs, stored) = {
            let s = scratch(backend)?;
            let mut conn = s.pool.get()?;
            let started = Instant::now();
            let known = service::Known::load(&mut conn).map_err(e)?;
            let mut stored = 0usize;
            let mut pending: batch::Batcher<()> = batch::Batcher::new();
            for raw in &corpus {
                if pending.push((), raw.clone(), None) {
                    let done = pending.ingest(&mut conn, &s.config.mail, &known, "bench").map_err(e)?;
                    stored += done.iter().filter(|(_, r)| r.status == "stored").count();
                }
            }
            let done = pending.ingest(&mut conn, &s.config.mail, &known, "bench").map_err(e)?;
            stored += done.iter().filter(|(_, r)| r.status == "stored").count();
            (started.elapsed().as_secs_f64(), stored)
        };
        println!(
            "mail ingest, batches [{label}]: {count} messages in {secs:.2} s = {:.0} messages/s ({stored} stored)",
            rate(secs)
        );
        let target = if backend.is_some() { 2_000.0 } else { 5_000.0 };
        figures.push(
            Figure::new("mail ingest, batches", label, rate(secs), "messages/s").target(Target::AtLeast(target)).note(
                format!(
                    "{count} messages, {stored} stored; batches of {} (CLI import, Maildir, upload)",
                    batch::MAX_MESSAGES
                ),
            ),
        );

        // One by one from several senders at once (MX hosts posting concurrently). Each
        // sender takes whole conversations, so replies still follow what they answer.
        if senders > 1 {
            let s = scratch(backend)?;
            let started = Instant::now();
            let stored = std::thread::scope(|scope| -> anyhow::Result<usize> {
                let workers: Vec<_> = (0..senders)
                    .map(|k| {
                        let (s, corpus) = (&s, &corpus);
                        scope.spawn(move || -> anyhow::Result<usize> {
                            let mut conn = s.pool.get()?;
                            let known = service::Known::load(&mut conn).map_err(e)?;
                            let mut stored = 0usize;
                            for raw in corpus.iter().enumerate().filter(|(i, _)| (i / 5) % senders == k).map(|x| x.1) {
                                let r = service::ingest_with(&mut conn, &s.config.mail, &known, raw, "bench", None)
                                    .map_err(e)?;
                                stored += usize::from(r.status == "stored");
                            }
                            Ok(stored)
                        })
                    })
                    .collect();
                let mut stored = 0;
                for w in workers {
                    stored += w.join().map_err(|_| anyhow::anyhow!("a sender panicked"))??;
                }
                Ok(stored)
            })?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "mail ingest, one by one x{senders} [{label}]: {count} messages in {secs:.2} s = {:.0} messages/s ({stored} stored)",
                rate(secs)
            );
            figures.push(
                Figure::new(format!("mail ingest, one by one x{senders}"), label, rate(secs), "messages/s")
                    .note(format!("{count} messages, {stored} stored; {senders} concurrent senders")),
            );
        }
    }
    Ok(figures)
}

/// Runs the worker on `state` until the queue is empty; returns the elapsed seconds.
async fn drain(state: &crate::web::AppState, concurrency: usize) -> anyhow::Result<f64> {
    drain_while(state, concurrency, || false).await
}

/// Runs one worker on `state` until `producing` is false and the queue is empty: a
/// worker that catches up with its producer waits for the next jobs, as in production.
async fn drain_while(
    state: &crate::web::AppState,
    concurrency: usize,
    producing: impl Fn() -> bool,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = crate::worker::runner::WorkerOptions {
        name: "bench".into(),
        concurrency,
        lease: std::time::Duration::from_secs(300),
        poll: std::time::Duration::from_millis(5),
        job_timeout: std::time::Duration::from_secs(60),
        grace: std::time::Duration::from_secs(5),
    };
    let registry = std::sync::Arc::new(crate::app::registry(&state.config));
    let worker = tokio::spawn(crate::worker::runner::run(state.services.clone(), registry, opts, stop_rx));
    loop {
        // Whether the producer is done is read before the count, so no job committed
        // after the count can be missed.
        let produced = !producing();
        let pool = state.pool.clone();
        let left = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let mut conn = pool.get()?;
            Ok(crate::worker::models::pending(&mut conn)?)
        })
        .await??;
        if produced && left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = worker.await;
    Ok(secs)
}

/// `hubgate bench queue`: no-op jobs through enqueue → claim → complete, and mails
/// through the file transport, on SQLite and (when given) PostgreSQL.
pub fn queue(pg_admin: Option<&str>, jobs: usize, mails: usize, concurrency: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let backends = backends(pg_admin);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for backend in backends {
        let label = if backend.is_some() { "postgres" } else { "sqlite" };
        let s = scratch(backend)?;
        let state = crate::web::AppState::new(s.config.clone(), s.pool.clone())?;
        // Enqueue one by one through the public API, in one transaction.
        let started = Instant::now();
        {
            let mut conn = s.pool.get()?;
            conn.transaction(|c| -> crate::error::AppResult<()> {
                for i in 0..jobs {
                    crate::worker::enqueue(c, "debug.noop", &serde_json::json!({"i": i}), &Default::default())?;
                }
                Ok(())
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let enqueue_secs = started.elapsed().as_secs_f64();
        let drain_secs = runtime.block_on(drain(&state, concurrency))?;
        let total = enqueue_secs + drain_secs;
        // Pipelined, as in production: a producer commits batches of 100 (as the
        // notifier enqueues a page of bank transactions) while the worker drains; from
        // the first enqueue to the last completion.
        let started = Instant::now();
        let pool = s.pool.clone();
        let producer = std::thread::spawn(move || -> anyhow::Result<()> {
            let mut conn = pool.get()?;
            for chunk in 0..jobs.div_ceil(100) {
                let batch: Vec<_> = (chunk * 100..((chunk + 1) * 100).min(jobs))
                    .map(|i| (serde_json::json!({"i": i}), crate::worker::JobOptions::default()))
                    .collect();
                crate::db::tx(&mut conn, |c| crate::worker::enqueue_many(c, "debug.noop", &batch))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            Ok(())
        });
        runtime.block_on(drain_while(&state, concurrency, || !producer.is_finished()))?;
        producer.join().map_err(|_| anyhow::anyhow!("producer panicked"))??;
        let pipelined = started.elapsed().as_secs_f64();
        println!(
            "queue [{label}]: {jobs} no-op jobs: enqueue {:.0}/s, claim+run+complete {:.0}/s, one after the other {:.0} jobs/s ({total:.2} s); pipelined end to end {:.0} jobs/s ({pipelined:.2} s, concurrency {concurrency})",
            jobs as f64 / enqueue_secs,
            jobs as f64 / drain_secs,
            jobs as f64 / total,
            jobs as f64 / pipelined
        );
        let target = if backend.is_some() { 20_000.0 } else { 50_000.0 };
        figures.push(
            Figure::new("queue: no-op jobs, pipelined", label, jobs as f64 / pipelined, "jobs/s")
                .target(Target::AtLeast(target))
                .note(format!("{jobs} jobs, enqueue → claim → complete, concurrency {concurrency}")),
        );
        figures.push(
            Figure::new("queue: no-op jobs, enqueue then drain", label, jobs as f64 / total, "jobs/s").note(format!(
                "enqueue {:.0}/s, drain {:.0}/s",
                jobs as f64 / enqueue_secs,
                jobs as f64 / drain_secs
            )),
        );
        if mails > 0 {
            let started = Instant::now();
            {
                let mut conn = s.pool.get()?;
                let actor = crate::audit::Actor::system("bench");
                for i in 0..mails {
                    let mail = crate::mail::outbound::OutgoingMail {
                        to: vec!["doitac@momo.vn".into()],
                        subject: format!("Xác nhận mở cổng kết nối HUB #{i}"),
                        text: "Kính gửi MoMo,\n\niPOS xác nhận mở cổng kết nối HUB cho merchant.\n\nTrân trọng,\niPOS"
                            .into(),
                        in_reply_to: Some(format!("req{i}@momo.vn")),
                        references: vec![format!("req{i}@momo.vn")],
                        ..Default::default()
                    };
                    crate::mail::outbound::queue_mail(&mut conn, &s.config.outbound, &actor, &mail)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            let queue_secs = started.elapsed().as_secs_f64();
            let send_secs = runtime.block_on(drain(&state, concurrency))?;
            println!(
                "mail [{label}]: {mails} mails: compose+queue {:.0}/s, send through the file transport {:.0}/s",
                mails as f64 / queue_secs,
                mails as f64 / send_secs
            );
            figures.push(
                Figure::new("queue: mails through the file transport", label, mails as f64 / send_secs, "mails/s")
                    .note(format!("{mails} mails; composed and queued at {:.0}/s", mails as f64 / queue_secs)),
            );
        }
    }
    Ok(figures)
}

/// The web bench's rows as figures: the bare Fortunes page in requests/s, each page
/// as its share of it on the same database (issue 17's goal: 60 % or more).
pub fn web_figures(rows: &[web::Row]) -> Vec<Figure> {
    rows.iter()
        .map(|r| {
            let note =
                format!("{:.0} req/s, p99 {:.1} ms, {} errors, {:.0} µs CPU/req", r.rps, r.p99_ms, r.errors, r.cpu_us);
            match rows.iter().find(|b| b.backend == r.backend) {
                Some(bare) if !std::ptr::eq(bare, r) => Figure::new(
                    format!("web: {}", r.page),
                    r.backend,
                    100.0 * r.rps / bare.rps.max(f64::MIN_POSITIVE),
                    "% of bare",
                )
                .target(Target::AtLeast(60.0))
                .note(note),
                _ => Figure::new(format!("web: {}", r.page), r.backend, r.rps, "req/s").note(note),
            }
        })
        .collect()
}

/// Median milliseconds of `runs` calls of `f`.
fn median_ms(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// `hubgate bench desk`: the merchant search and pages with `points` points.
pub fn desk(pg_admin: Option<&str>, points: usize) -> anyhow::Result<()> {
    use crate::db::schema::{merchants, points as pts};
    use diesel::ExpressionMethods;
    let backends = backends(pg_admin);
    for backend in backends {
        let label = if backend.is_some() { "postgres" } else { "sqlite" };
        let s = scratch(backend)?;
        let mut pooled = s.pool.get()?;
        let conn: &mut crate::db::DbConn = &mut pooled;
        let merchants_n = points / 3;
        let t = crate::db::now();
        let started = Instant::now();
        conn.transaction(|c| -> diesel::QueryResult<()> {
            for chunk in (0..merchants_n).collect::<Vec<_>>().chunks(2000) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|i| {
                        let name = format!(
                            "{} {} {i}",
                            ["Phở", "Bún", "Cơm", "Cà phê", "Trà sữa"][i % 5],
                            ["Thìn", "Hương", "Lan", "Minh"][i % 4]
                        );
                        (
                            merchants::name.eq(name.clone()),
                            merchants::search_key.eq(crate::mail::inbound::classify::fold(&name)),
                            merchants::created_at.eq(t),
                            merchants::updated_at.eq(t),
                        )
                    })
                    .collect();
                crate::with_conn!(c, |x| diesel::insert_into(merchants::table).values(&rows).execute(x))?;
            }
            for chunk in (0..points).collect::<Vec<_>>().chunks(2000) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|i| {
                        let name = format!("Điểm {i}");
                        (
                            pts::merchant_id.eq((i % merchants_n) as i64 + 1),
                            pts::name.eq(name.clone()),
                            pts::address.eq(format!("{} Lê Lợi, Quận 1", i % 300)),
                            pts::search_key.eq(crate::mail::inbound::classify::fold(&name)),
                            pts::created_at.eq(t),
                            pts::updated_at.eq(t),
                        )
                    })
                    .collect();
                crate::with_conn!(c, |x| diesel::insert_into(pts::table).values(&rows).execute(x))?;
            }
            Ok(())
        })?;
        let load = started.elapsed().as_secs_f64();
        let search = median_ms(21, || Ok(crate::hub::models::search_merchants(conn, "pho", 0, 50).map(|_| ())?))?;
        let deep = median_ms(21, || {
            Ok(crate::hub::models::search_merchants(conn, "", 20_000.min(merchants_n as i64 - 50), 50).map(|_| ())?)
        })?;
        let one =
            median_ms(21, || Ok(crate::hub::models::points_of(conn, 4242 % merchants_n as i64 + 1).map(|_| ())?))?;
        println!(
            "desk [{label}]: {merchants_n} merchants / {points} points loaded in {load:.1} s; search page {search:.1} ms, page 400 {deep:.1} ms, a merchant's points {one:.2} ms (medians of 21)"
        );
    }
    Ok(())
}

/// CPU seconds this thread has used (user and system): beside wall time, the figure a
/// machine shared with other work cannot inflate.
fn thread_cpu_secs() -> f64 {
    // Fields 14 and 15 of /proc/thread-self/stat, in clock ticks (100 per second on Linux).
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// A size line of /proc/self/status (`VmHWM:`, `RssAnon:` …) in MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// The databases a bench runs on: SQLite, then PostgreSQL when an admin URL is given.
fn backends(pg_admin: Option<&str>) -> Vec<Option<&str>> {
    std::iter::once(None).chain(pg_admin.map(Some)).collect()
}

/// The targets are set at a million rows; a smaller run is held to its share of the time.
fn per_million(secs_at_a_million: f64, rows: usize) -> Target {
    Target::AtMost(secs_at_a_million * rows as f64 / 1_000_000.0)
}

/// Forgets the process's peak resident size so far (Linux's `clear_refs` 5): the
/// figure after is the measured step's, not the seeding's.
fn reset_peak_rss() {
    // Without it (an old kernel) the peak only reads high.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's resident anonymous memory (heap and stacks: not the file pages SQLite
/// maps, which the kernel can drop at will), in MB.
fn anon_mb() -> f64 {
    status_mb("RssAnon:")
}

/// Runs `f`, sampling [`anon_mb`] every 2 ms meanwhile; returns its result and the peak.
fn peak_anon_during<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = anon_mb();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(anon_mb());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak.max(anon_mb())
        });
        let out = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.join().unwrap_or(0.0);
        (out, peak)
    })
}

/// A month of `rows` connections as the desk leaves them, in a scratch database: one
/// request, one point and one PYC each, deployed in October 2026 (local time), over
/// every partner; the first `rows / 100` points were already connected to the same
/// partner in September, so October's list leaves them out. Returns how many October
/// lists.
pub fn seed_month(conn: &mut crate::db::DbConn, rows: usize) -> anyhow::Result<usize> {
    seed_month_of(conn, rows, None)
}

/// [`seed_month`], with every row under `partner` when one is given (a statement
/// comes from one partner).
pub fn seed_month_of(conn: &mut crate::db::DbConn, rows: usize, partner: Option<i64>) -> anyhow::Result<usize> {
    use crate::db::schema::{partners, pyc_templates};
    use diesel::QueryDsl;
    let partner_ids: Vec<i64> = partners::table.select(partners::id).order(partners::id).load(conn)?;
    let template: i64 = pyc_templates::table.select(pyc_templates::id).first(conn)?;
    anyhow::ensure!(!partner_ids.is_empty(), "the migrations seed the partners");
    let pg = matches!(conn, crate::db::DbConn::Pg(_));
    let when = |base: &str, step: &str| {
        if pg {
            format!("TIMESTAMP '{base}' + i * INTERVAL '{step} seconds'")
        } else {
            format!("datetime('{base}', '+' || (i * {step}) || ' seconds')")
        }
    };
    let partner = match partner {
        Some(id) => id.to_string(),
        None => format!(
            "CASE i % {} {} END",
            partner_ids.len(),
            partner_ids.iter().enumerate().map(|(k, id)| format!("WHEN {k} THEN {id}")).collect::<Vec<_>>().join(" ")
        ),
    };
    let earlier = rows / 100;
    // Ids far above the migrations' own rows; the September requests follow October's.
    const BASE: usize = 10_000_000;
    let n =
        |count: usize| format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) ");
    let now = "'2026-11-01 00:00:00'";
    let october = when("2026-09-30 17:00:00", "2");
    let september = when("2026-09-10 01:00:00", "1");
    let statements = [
        format!(
            "{}INSERT INTO merchants (id, name, search_key, created_at, updated_at) SELECT {BASE} + i, \
             CASE i % 4 WHEN 0 THEN 'Phở ' WHEN 1 THEN 'Bún ' WHEN 2 THEN 'Cơm ' ELSE 'Cà phê ' END || i, 'bench ' || i, {now}, {now} FROM n",
            n(rows.div_ceil(3))
        ),
        format!(
            "{}INSERT INTO points (id, merchant_id, name, address, search_key, created_at, updated_at) \
             SELECT {BASE} + i, {BASE} + (i + 2) / 3, 'Điểm ' || i, (i % 400) || ' Lê Lợi, Quận 1, TP.HCM', 'diem ' || i, {now}, {now} FROM n",
            n(rows)
        ),
        format!(
            "{}INSERT INTO requests (id, partner_id, merchant_id, state, version, opened_on, state_since, created_at, updated_at) \
             SELECT {BASE} + i, {partner}, {BASE} + (i + 2) / 3, 'replied', 1, {now}, {now}, {now}, {now} FROM n",
            n(rows)
        ),
        format!(
            "{}INSERT INTO requests (id, partner_id, merchant_id, state, version, opened_on, state_since, created_at, updated_at) \
             SELECT {BASE} + {rows} + i, {partner}, {BASE} + (i + 2) / 3, 'reported', 1, {now}, {now}, {now}, {now} FROM n",
            n(earlier.max(1))
        ),
        format!("{}INSERT INTO request_points (request_id, point_id) SELECT {BASE} + i, {BASE} + i FROM n", n(rows)),
        format!(
            "{}INSERT INTO request_points (request_id, point_id) SELECT {BASE} + {rows} + i, {BASE} + i FROM n",
            n(earlier.max(1))
        ),
        format!(
            "{}INSERT INTO pycs (id, number, request_id, state, customer_name, deployment_type, contract_code, signing_rep, \
             product, brand, point_applied, location, support_person, support_phone, notes, template_id, pos_parent, pos_id, \
             point_code, created_at, updated_at, deployed_at) \
             SELECT {BASE} + i, 'PYC-2026-' || i, {BASE} + i, 'deployed', '', '', '', '', '', '', '', '', '', '', '', {template}, \
             'PP-' || ((i + 2) / 3), 'POS-' || i, 'MD-' || i, {now}, {now}, {october} FROM n",
            n(rows)
        ),
        format!(
            "{}INSERT INTO pycs (id, number, request_id, state, customer_name, deployment_type, contract_code, signing_rep, \
             product, brand, point_applied, location, support_person, support_phone, notes, template_id, pos_parent, pos_id, \
             point_code, created_at, updated_at, deployed_at) \
             SELECT {BASE} + {rows} + i, 'PYC-2026-S' || i, {BASE} + {rows} + i, 'deployed', '', '', '', '', '', '', '', '', '', '', '', \
             {template}, 'PP-' || i, 'POS-' || i, 'MD-' || i, {now}, {now}, {september} FROM n",
            n(earlier.max(1))
        ),
    ];
    crate::db::tx(conn, |c| -> anyhow::Result<()> {
        for sql in &statements {
            crate::with_conn!(c, |x| diesel::sql_query(sql).execute(x))?;
        }
        Ok(())
    })?;
    // A month's rows arrive over a month, long checkpointed (SQLite: read from the
    // database file, not from a WAL of a million pages just written) and vacuumed
    // (PostgreSQL: else autovacuum works through the new rows during the timing).
    let settle = if pg { "VACUUM ANALYZE" } else { "PRAGMA wal_checkpoint(TRUNCATE)" };
    crate::with_conn!(conn, |x| diesel::sql_query(settle).execute(x))?;
    Ok(rows - earlier.max(1).min(rows))
}

/// `hubgate bench report`: seconds and peak memory to write a month of `rows`
/// connections from the database, as the download and the CLI do, on SQLite (and
/// PostgreSQL with `pg_admin`). The peak is this process's: run it alone (as
/// `bench all` does) for a figure of its own.
pub fn report(pg_admin: Option<&str>, rows: usize) -> anyhow::Result<Vec<Figure>> {
    let backends = backends(pg_admin);
    let mut figures = Vec::new();
    for backend in backends {
        let name = if backend.is_some() { "postgres" } else { "sqlite" };
        let s = scratch(backend)?;
        let mut conn = s.pool.get()?;
        let seeding = Instant::now();
        let expected = seed_month(&mut conn, rows)?;
        let seeded = seeding.elapsed().as_secs_f64();
        let mut file = tempfile::tempfile()?;
        reset_peak_rss();
        let before = anon_mb();
        let started = Instant::now();
        let (listed, peak) = peak_anon_during(|| {
            crate::reports::write_workbook(&mut conn, crate::reports::Month { year: 2026, month: 10 }, &mut file)
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
        let listed = listed?;
        let secs = started.elapsed().as_secs_f64();
        let size = file.metadata()?.len() as f64 / 1_048_576.0;
        println!(
            "report [{name}]: workbook of {} connections in {secs:.2} s, {size:.1} MB file; peak memory {peak:.0} MB (at start {before:.0} MB; \
             peak RSS with the mapped database file {:.0} MB; seeded in {seeded:.1} s)",
            listed.total(),
            peak_rss_mb()
        );
        // The seeded month must come out whole, or the timing means nothing.
        anyhow::ensure!(listed.total() == expected, "report: {} rows listed, {expected} expected", listed.total());
        figures.push(
            Figure::new("month workbook: time", name, secs, "s")
                .target(per_million(6.0, rows))
                .note(format!("{expected} rows from the database, {size:.1} MB xlsx")),
        );
        figures.push(
            Figure::new("month workbook: peak memory", name, peak, "MB")
                .target(Target::Below(100.0))
                .note("process peak anonymous memory while writing"),
        );
    }
    Ok(figures)
}

/// `hubgate bench reconcile`: our month of `rows` connections, seeded in a scratch
/// database under one partner, against that partner's statement of as many lines: an
/// xlsx file written from our rows as partners send it, their codes written their way
/// (lower case, zero-padded), every tenth under another merchant name, one in fifty
/// missing and as many of theirs that we do not have. The file is uploaded, then
/// `reconcile::run` is timed whole, as the page's button runs it: the file read from
/// the database and parsed, our month read and matched, the outcome saved. Memory is
/// the process's peak anonymous memory meanwhile.
pub fn reconcile(pg_admin: Option<&str>, rows: usize) -> anyhow::Result<Vec<Figure>> {
    use crate::reports::reconcile::{self as recon, Mapping};
    let backends = backends(pg_admin);
    let mut figures = Vec::new();
    for backend in backends {
        let name = if backend.is_some() { "postgres" } else { "sqlite" };
        let s = scratch(backend)?;
        let mut conn = s.pool.get()?;
        let partner: i64 = {
            use crate::db::schema::partners;
            use diesel::QueryDsl;
            partners::table.select(partners::id).order(partners::id).first(&mut conn)?
        };
        let expected = seed_month_of(&mut conn, rows, Some(partner))?;
        let month = crate::reports::Month { year: 2026, month: 10 };
        let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
        let bytes = {
            let mut book = rust_xlsxwriter::Workbook::new();
            let x = |e: rust_xlsxwriter::XlsxError| anyhow::anyhow!("xlsx: {e}");
            let sheet = book.add_worksheet_with_constant_memory().map_err(x)?;
            sheet.set_name("Bang ke").map_err(x)?;
            for (c, h) in ["Mã POS", "Merchant", "Ngày"].iter().enumerate() {
                sheet.write_string(0, c as u16, *h).map_err(x)?;
            }
            let mut line = 0u32;
            crate::reports::each_month_row(&mut conn, month, Some(partner), &mut |r| {
                let i = line as usize;
                line += 1;
                let merchant = if i.is_multiple_of(10) { "Khác".to_string() } else { r.merchant };
                let pos = if i.is_multiple_of(50) {
                    format!("pos-x{i:07}")
                } else {
                    r.pos_id.to_lowercase().replace("pos-", "pos-00")
                };
                let mut put = |c: u16, v: String| {
                    sheet.write_string(line, c, v).map(|_| ()).map_err(crate::error::AppError::internal)
                };
                put(0, pos)?;
                put(1, merchant)?;
                put(2, r.live_at.format("%d/%m/%Y").to_string())
            })
            .map_err(e)?;
            anyhow::ensure!(line as usize == expected, "reconcile: {line} rows of the month, {expected} expected");
            book.save_to_buffer().map_err(x)?
        };
        let size = bytes.len() as f64 / 1e6;
        let actor = crate::audit::Actor::system("bench");
        let id = recon::upload(&mut conn, &actor, partner, "2026-10", "doi-soat.xlsx", &bytes).map_err(e)?;
        drop(bytes);
        let mapping = Mapping {
            sheet: "Bang ke".into(),
            header_row: 0,
            pos_id: Some(0),
            point_code: None,
            merchant: Some(1),
            date: Some(2),
        };
        reset_peak_rss();
        let before = anon_mb();
        let started = Instant::now();
        let (outcome, peak) = peak_anon_during(|| recon::run(&mut conn, &actor, id, &mapping));
        let secs = started.elapsed().as_secs_f64();
        let outcome = outcome.map_err(e)?;
        println!(
            "reconcile [{name}]: {expected} of ours against {expected} lines of theirs ({size:.1} MB xlsx) in {secs:.2} s from the upload \
             ({} matched, {} only ours, {} only theirs, {} differing); peak anonymous memory {peak:.0} MB (at start {before:.0} MB)",
            outcome.matched.len(),
            outcome.only_ours.len(),
            outcome.only_theirs.len(),
            outcome.differing.len()
        );
        // The statement must land where it was built to, or the timing means nothing.
        let missing = expected.div_ceil(50);
        anyhow::ensure!(
            outcome.only_ours.len() == missing
                && outcome.only_theirs.len() == missing
                && outcome.differing.len() == expected.div_ceil(10) - missing,
            "reconcile: {} only ours, {} only theirs and {} differing; {missing}, {missing} and {} expected",
            outcome.only_ours.len(),
            outcome.only_theirs.len(),
            outcome.differing.len(),
            expected.div_ceil(10) - missing
        );
        figures.push(
            Figure::new("reconciliation from the upload: time", name, secs, "s")
                .target(per_million(3.0, expected))
                .note(format!("{expected} × {expected} rows, {size:.0} MB xlsx read, matched, saved")),
        );
        figures.push(
            Figure::new("reconciliation from the upload: peak memory", name, peak, "MB")
                .target(Target::Below(500.0))
                .note("process peak anonymous memory while it runs"),
        );
        // The page after the run: the head of each list, read from what was saved.
        let started = Instant::now();
        let head = recon::get(&mut conn, id)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|r| recon::saved_head(&mut conn, &r).map_err(e))?;
        let head_secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            head.as_ref().map(|h| (h.only_ours.total, h.only_ours.items.len()))
                == Some((missing, missing.min(recon::SHOWN))),
            "reconcile: the saved outcome's head does not read back"
        );
        println!("reconcile [{name}]: the result page's lists read in {:.1} ms", head_secs * 1000.0);
        figures.push(
            Figure::new("reconciliation: its page's lists", name, head_secs * 1000.0, "ms")
                .note("the first 200 of each list, saved beside the outcome, and their lengths"),
        );
        // The next click: the outcome as a workbook, from what was saved (not from the
        // outcome `run` returned, which is let go first).
        drop(outcome);
        reset_peak_rss();
        let started = Instant::now();
        let (book, book_peak) = peak_anon_during(|| recon::outcome_xlsx(&mut conn, id));
        let book_secs = started.elapsed().as_secs_f64();
        let book = book.map_err(e)?.context("reconcile: no outcome saved")?;
        println!(
            "reconcile [{name}]: its outcome as a workbook in {book_secs:.2} s, {:.1} MB; peak anonymous memory {book_peak:.0} MB",
            book.len() as f64 / 1e6
        );
        figures.push(Figure::new("reconciliation: its workbook", name, book_secs, "s").note(format!(
            "{expected} lines in four sheets, {:.0} MB, from the saved outcome",
            book.len() as f64 / 1e6
        )));
        figures.push(
            Figure::new("reconciliation: its workbook, peak memory", name, book_peak, "MB")
                .target(Target::Below(500.0))
                .note("process peak anonymous memory while it is written"),
        );
    }
    Ok(figures)
}

/// Transactions per second through the sync engine's store (`banking::sync::apply_page`:
/// one transaction per page of 500, de-duplicated by (account, bank id)): first all
/// new, then the same pages again, all already known.
pub fn sync(pg_admin: Option<&str>, count: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    use crate::banking::connectors::IncomingTx;
    let backends = backends(pg_admin);
    let start = crate::db::now() - chrono::Duration::days(30);
    let txs: Vec<IncomingTx> =
        (0..count).map(|i| bench_tx(i, start + chrono::Duration::seconds(i as i64 * 7))).collect();
    for backend in backends {
        let s = scratch(backend)?;
        let mut conn = s.pool.get()?;
        let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
        let (_, _, account) = bench_account(&mut conn, "bench@sync.vn", "demo")?;
        let name = if backend.is_some() { "postgres" } else { "sqlite" };
        for round in ["new", "already known"] {
            let started = Instant::now();
            let mut stored = 0;
            for page in txs.chunks(500) {
                stored +=
                    crate::banking::sync::apply_page(&mut conn, &account, page, "bench").map_err(e)?.new_ids.len();
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "sync store [{name}] {round}: {count} transactions in {secs:.2} s = {:.0} transactions/s ({stored} stored)",
                count as f64 / secs
            );
            figures.push(
                Figure::new(format!("sync store: {round}"), name, count as f64 / secs, "transactions/s")
                    .note(format!("{count} transactions in pages of 500")),
            );
        }
    }
    Ok(figures)
}

/// A server the bench started in this process.
pub struct Served {
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Served {
    /// Spawns `server` (listening on `addr`) on the current system.
    pub fn spawn(addr: std::net::SocketAddr, server: actix_web::dev::Server) -> Self {
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Served { addr, handle }
    }

    /// Waits for the requests in flight, then stops: a scratch database dropped under
    /// a running server left its pool reconnecting while the process exited, which
    /// crashed it in libpq's teardown.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// The whole app on a free 127.0.0.1 port, in this process (one HTTP worker).
fn serve_in_process(state: &crate::web::AppState) -> anyhow::Result<Served> {
    let metrics = crate::web::metrics(&state.pool)?;
    let app_state = state.clone();
    let server = actix_web::HttpServer::new(move || crate::web::build_app(app_state.clone(), metrics.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))?;
    Ok(Served::spawn(server.addrs()[0], server.run()))
}

/// The n-th generated bank transaction of the benches.
fn bench_tx(i: usize, occurred_at: chrono::NaiveDateTime) -> crate::banking::connectors::IncomingTx {
    crate::banking::connectors::IncomingTx {
        bank_tx_id: format!("FT{i:012}"),
        amount: if i.is_multiple_of(4) { -((i % 997) as i64 + 1) * 1000 } else { ((i % 991) as i64 + 1) * 1000 },
        description: format!("NGUYEN VAN {} chuyen tien thanh toan don hang {i}", SHOPS[i % SHOPS.len()]),
        balance: Some(10_000_000 + i as i64),
        occurred_at,
        pending: false,
        counter_account: format!("0{:09}", i % 1_000_000_000),
        counter_name: "NGUYEN VAN A".into(),
        counter_bank_id: "970436".into(),
        counter_bank_name: "Vietcombank".into(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: "IBFT".into(),
        replaces: None,
    }
}

/// A merchant, a business on the PRO plan and a linked account, for the benches.
fn bench_account(
    conn: &mut crate::db::DbConn,
    email: &str,
    method: &str,
) -> anyhow::Result<(crate::audit::Actor, i64, crate::business::models::BankAccount)> {
    let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
    let owner =
        crate::accounts::merchant::create_ready_account(conn, email, "Bench", "0912345678", "mat-khau-bench-2026")
            .map_err(e)?;
    let actor = crate::audit::Actor::user(owner.id, &owner.email);
    let input =
        crate::business::service::BusinessInput { name: "Bench".into(), website: String::new(), features: vec![] };
    let b = crate::business::service::create_business(conn, &actor, owner.id, &input).map_err(e)?;
    let pro = crate::business::models::plans(conn)?.into_iter().find(|p| p.code == "PRO").context("no PRO plan")?;
    crate::business::service::set_plan(conn, &actor, b.id, pro.id).map_err(e)?;
    let account = crate::business::service::link_account(
        conn,
        &actor,
        &crate::business::models::NewBankAccount {
            business_id: b.id,
            bank_code: "ACB",
            bank_name: "ACB",
            account_number: "0071000123456",
            account_name: "BENCH",
            method,
            connect_status: "connected",
            created_at: crate::db::now(),
            connection_id: None,
            bank_bin: "970416",
            external_id: "bench",
            balance: None,
            sync_from: None,
            next_sync_at: None,
        },
    )
    .map_err(e)?;
    Ok((actor, b.id, account))
}

/// Push to receipt: transactions pushed to `/bank-hooks/…` at `rate` per second for
/// `seconds`, through the web app, the store, the embedded worker and a signed webhook
/// to a local receiver; the latency of each from the push's start to its receipt.
/// Then the delivery rate at full speed (a backlog of `rate * seconds` at once).
pub fn notify(pg_admin: Option<&str>, rate: usize, seconds: usize) -> anyhow::Result<Vec<Figure>> {
    let backends: Vec<Option<String>> = match pg_admin {
        Some(url) => vec![None, Some(url.to_string())],
        None => vec![None],
    };
    let mut figures = Vec::new();
    for backend in backends {
        figures.extend(actix_web::rt::System::new().block_on(notify_one(backend, rate, seconds))?);
    }
    Ok(figures)
}

type Receipts = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

async fn receive_webhook(
    seen: actix_web::web::Data<Receipts>,
    body: actix_web::web::Json<serde_json::Value>,
) -> actix_web::HttpResponse {
    if let Some(reference) = body["data"]["reference"].as_str() {
        seen.lock().unwrap_or_else(|e| e.into_inner()).entry(reference.to_string()).or_insert_with(Instant::now);
    }
    actix_web::HttpResponse::Ok().json(serde_json::json!({ "success": true }))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn notify_one(pg_admin: Option<String>, rate: usize, seconds: usize) -> anyhow::Result<Vec<Figure>> {
    use crate::audit::Actor;
    let label = if pg_admin.is_some() { "postgres" } else { "sqlite" };
    let mut s = scratch(pg_admin.as_deref())?;
    s.config.webhook_allow_private = true;
    s.config.worker.concurrency = 32;
    s.config.worker.poll = std::time::Duration::from_millis(500);
    // As `serve` would: a pool sized for the web workers plus the worker's concurrency.
    let pool = crate::db::pool(&s.config.database_url, 40)?;
    let state = crate::web::AppState::new(s.config.clone(), pool)?;

    let seen: Receipts = Default::default();
    let data = actix_web::web::Data::new(seen.clone());
    let receiver = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(data.clone()).default_service(actix_web::web::to(receive_webhook))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))?;
    let receiver_addr = receiver.addrs()[0];
    actix_web::rt::spawn(receiver.run());

    let app = serve_in_process(&state)?;
    let app_addr = app.addr;

    // A merchant, a business, a push-linked account and a Casso V2 webhook.
    let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
    let (bid, key, secret, actor) = {
        let mut conn = state.pool.get()?;
        let owner = crate::accounts::merchant::create_ready_account(
            &mut conn,
            "bench@notify.vn",
            "Bench",
            "0912345678",
            "mat-khau-bench-2026",
        )
        .map_err(e)?;
        let actor = Actor::user(owner.id, &owner.email);
        let input =
            crate::business::service::BusinessInput { name: "Bench".into(), website: String::new(), features: vec![] };
        let b = crate::business::service::create_business(&mut conn, &actor, owner.id, &input).map_err(e)?;
        // A big plan: the bench must not hit the trial's monthly quota.
        let pro =
            crate::business::models::plans(&mut conn)?.into_iter().find(|p| p.code == "PRO").context("no PRO plan")?;
        crate::business::service::set_plan(&mut conn, &actor, b.id, pro.id).map_err(e)?;
        let (key, secret) = crate::banking::service::create_push(
            &mut conn,
            &state.config,
            &actor,
            b.id,
            "970416",
            "0071000123456",
            "BENCH",
        )
        .map_err(e)?;
        (b.id, key, secret, actor)
    };
    let input = crate::notify::service::WebhookInput {
        common: Default::default(),
        url: format!("http://{receiver_addr}/hook"),
        format: "casso_v2".into(),
    };
    crate::notify::service::create_webhook(&state, &actor, bid, input).await.map_err(e)?;
    seen.lock().unwrap_or_else(|e| e.into_inner()).clear();

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(crate::worker::runner::run(
        state.services.clone(),
        std::sync::Arc::new(crate::app::registry(&s.config)),
        crate::worker::runner::WorkerOptions::from_config(&state.config),
        stop_rx,
    ));

    // Pushes at a steady rate; each push's start time is kept by its reference.
    let client = reqwest::Client::new();
    let url = format!("http://{app_addr}/bank-hooks/{key}");
    let total = rate * seconds;
    let sent: Receipts = Default::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pushes = tokio::task::JoinSet::new();
    let booking = chrono::Utc::now().with_timezone(&crate::fmt::TZ).format("%Y-%m-%d %H:%M:%S").to_string();
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (client, url, secret, sent, booking) =
            (client.clone(), url.clone(), secret.clone(), sent.clone(), booking.clone());
        pushes.spawn(async move {
            let id = format!("NB{i:08}");
            let body = serde_json::json!({ "transactions": [{
                "account_number": "0071000123456", "id": id, "booking_time": booking,
                "amount": 10_000 + i as i64, "description": format!("bench {i}"),
            }]});
            let t0 = Instant::now();
            sent.lock().unwrap_or_else(|e| e.into_inner()).insert(id, t0);
            let ok = client.post(&url).header("authorization", format!("Apikey {secret}")).json(&body).send().await;
            // How long the push itself took to be answered (stored and committed).
            ok.is_ok_and(|r| r.status().is_success()).then(|| t0.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut failed = 0;
    let mut answered = Vec::with_capacity(total);
    while let Some(ok) = pushes.join_next().await {
        match ok {
            Ok(Some(ms)) => answered.push(ms),
            _ => failed += 1,
        }
    }
    answered.sort_by(|a, b| a.total_cmp(b));
    let push_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while seen.lock().unwrap_or_else(|e| e.into_inner()).len() < total && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut latencies: Vec<f64> = {
        let (sent, seen) =
            (sent.lock().unwrap_or_else(|e| e.into_inner()), seen.lock().unwrap_or_else(|e| e.into_inner()));
        sent.iter()
            .filter_map(|(id, t0)| seen.get(id).map(|t1| t1.duration_since(*t0).as_secs_f64() * 1000.0))
            .collect()
    };
    latencies.sort_by(|a, b| a.total_cmp(b));
    let delivered = latencies.len();
    // PRODUCT.md: delivered "well under a second after the transaction arrives".
    let mut figures = vec![
        Figure::new("notify: push → webhook receipt, p99", label, percentile(&latencies, 0.99), "ms")
            .target(Target::Below(1_000.0))
            .note(format!(
                "{total} pushes at {rate}/s, {delivered} delivered, {failed} failed; p50 {:.0} ms",
                percentile(&latencies, 0.50)
            )),
    ];
    println!(
        "notify [{label}] {total} pushes at {rate}/s in {push_secs:.1} s ({failed} failed), {} delivered: push→receipt p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms; the push answered p50 {:.0} ms, p99 {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        percentile(&answered, 0.50),
        percentile(&answered, 0.99),
    );

    // Full speed: a backlog stored at once, drained by the worker.
    seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let account = {
        let mut conn = state.pool.get()?;
        crate::business::models::linked_accounts(&mut conn, bid)?.into_iter().next().context("no account")?
    };
    let now = crate::db::now();
    let backlog: Vec<crate::banking::connectors::IncomingTx> = (0..total)
        .map(|i| crate::banking::connectors::IncomingTx {
            bank_tx_id: format!("FS{i:08}"),
            amount: 1_000 + i as i64,
            description: format!("full speed {i}"),
            balance: None,
            occurred_at: now,
            pending: false,
            counter_account: String::new(),
            counter_name: String::new(),
            counter_bank_id: String::new(),
            counter_bank_name: String::new(),
            virtual_account: String::new(),
            virtual_account_name: String::new(),
            payment_channel: "bench".into(),
            replaces: None,
        })
        .collect();
    let started = Instant::now();
    {
        let mut conn = state.pool.get()?;
        for page in backlog.chunks(500) {
            crate::banking::sync::apply_page(&mut conn, &account, page, "bench").map_err(e)?;
        }
        // Stored outside the web helpers: wake the worker as they would.
        state.wake.notify_one();
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    while seen.lock().unwrap_or_else(|e| e.into_inner()).len() < total && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let got = seen.lock().unwrap_or_else(|e| e.into_inner()).len();
    println!(
        "notify [{label}] full speed: {got} of {total} webhooks delivered in {secs:.2} s = {:.0} deliveries/s",
        got as f64 / secs
    );
    figures.push(
        Figure::new("notify: webhooks at full speed", label, got as f64 / secs, "deliveries/s")
            .note(format!("{got} of {total} delivered from a backlog")),
    );
    let _ = stop.send(true);
    let _ = worker.await;
    app.stop().await;
    Ok(figures)
}

/// `GET /v2/transactions` (pages of 100 over `count` transactions) and `/v2/userInfo`
/// through HTTP with an API key: requests per second and p99, with `concurrency`
/// requests in flight for `seconds` each. The load generator runs in the same process
/// (the same two cores) as the server.
pub fn api(pg_admin: Option<&str>, count: usize, seconds: u64, concurrency: usize) -> anyhow::Result<()> {
    let backends: Vec<Option<String>> = match pg_admin {
        Some(url) => vec![None, Some(url.to_string())],
        None => vec![None],
    };
    for backend in backends {
        actix_web::rt::System::new().block_on(api_one(backend, count, seconds, concurrency))?;
    }
    Ok(())
}

async fn api_one(pg_admin: Option<String>, count: usize, seconds: u64, concurrency: usize) -> anyhow::Result<()> {
    let label = if pg_admin.is_some() { "postgres" } else { "sqlite" };
    let mut s = scratch(pg_admin.as_deref())?;
    s.config.api_rate_per_second = 1_000_000;
    let pool = crate::db::pool(&s.config.database_url, 16)?;
    let state = crate::web::AppState::new(s.config.clone(), pool)?;
    let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
    let started = Instant::now();
    let (key, pages) = {
        let mut conn = state.pool.get()?;
        let (actor, business_id, account) = bench_account(&mut conn, "bench@api.vn", "push")?;
        // Spread over the last 30 days, stored through the sync engine's path.
        let now = crate::db::now();
        let step = (30 * 86_400 * 1000 / count.max(1) as i64).max(1);
        for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
            let page: Vec<crate::banking::connectors::IncomingTx> =
                chunk.iter().map(|&i| bench_tx(i, now - chrono::Duration::milliseconds(step * i as i64))).collect();
            crate::banking::sync::apply_page(&mut conn, &account, &page, "bench").map_err(e)?;
        }
        let (_, key) = crate::api::keys::create(&mut conn, &state.config, &actor, business_id, "bench").map_err(e)?;
        (key, count.div_ceil(100).max(1))
    };
    println!("api [{label}] {count} transactions stored in {:.1} s", started.elapsed().as_secs_f64());

    let app = serve_in_process(&state)?;
    let base = format!("http://{}", app.addr);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let from = crate::fmt::local_date(crate::db::now() - chrono::Duration::days(31)).format("%Y-%m-%d").to_string();
    for (name, path) in [
        ("GET /v2/transactions (100 per page)", format!("/v2/transactions?fromDate={from}&pageSize=100&page=")),
        ("GET /v2/userInfo", "/v2/userInfo".to_string()),
    ] {
        let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..concurrency {
            let (client, base, path, key) = (client.clone(), base.clone(), path.clone(), key.clone());
            tasks.spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                let mut n = worker;
                while Instant::now() < deadline {
                    // Pages spread over the whole history (a client walking it).
                    let url = if path.ends_with("page=") {
                        format!("{base}{path}{}", (n * 7919) % pages + 1)
                    } else {
                        format!("{base}{path}")
                    };
                    n += concurrency;
                    let t0 = Instant::now();
                    let ok = match client.get(&url).header("authorization", format!("Apikey {key}")).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    if !ok {
                        errors += 1;
                    }
                }
                (lat, errors)
            });
        }
        let mut all = Vec::new();
        let mut errors = 0;
        while let Some(Ok((lat, err))) = tasks.join_next().await {
            all.extend(lat);
            errors += err;
        }
        all.sort_by(|a, b| a.total_cmp(b));
        println!(
            "api [{label}] {name}: {:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms ({} requests, {errors} errors, {concurrency} in flight)",
            all.len() as f64 / seconds as f64,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            all.len()
        );
    }
    app.stop().await;
    Ok(())
}

/// `hubgate bench statement`: a `rows`-row Vietcombank-style xlsx (title rows, debit and
/// credit columns, text dates, no reference on every other row), read through the
/// statement parser, then imported whole (parse + store) into a throw-away SQLite
/// database; rows/s of each and the process's peak memory.
pub fn statement(rows: usize) -> anyhow::Result<Vec<Figure>> {
    use crate::banking::statement;
    let before = peak_rss_mb();
    let mut book = rust_xlsxwriter::Workbook::new();
    let x = |e: rust_xlsxwriter::XlsxError| anyhow::anyhow!("xlsx: {e}");
    let sheet = book.add_worksheet_with_constant_memory().map_err(x)?;
    sheet.write_string(0, 0, "SAO KÊ TÀI KHOẢN / ACCOUNT STATEMENT").map_err(x)?;
    sheet.write_string(1, 0, "Số tài khoản/Account number:").map_err(x)?;
    sheet.write_string(1, 1, "0071000123456").map_err(x)?;
    let header =
        ["STT", "Ngày giao dịch", "Số tham chiếu", "Số tiền ghi nợ", "Số tiền ghi có", "Số dư", "Nội dung chi tiết"];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(3, c as u16, *h).map_err(x)?;
    }
    let mut balance = 0i64;
    for i in 0..rows {
        let r = i as u32 + 4;
        let tx = bench_tx(i, chrono::NaiveDateTime::default());
        balance += tx.amount;
        sheet.write_number(r, 0, (i + 1) as f64).map_err(x)?;
        let day = i * 28 / rows.max(1) + 1;
        sheet
            .write_string(r, 1, format!("{day:02}/10/2026 {:02}:{:02}:{:02}", i % 24, i % 60, (i / 60) % 60))
            .map_err(x)?;
        if i % 2 == 0 {
            sheet.write_string(r, 2, &tx.bank_tx_id).map_err(x)?;
        }
        let col = if tx.amount < 0 { 3 } else { 4 };
        sheet.write_number(r, col, tx.amount.abs() as f64).map_err(x)?;
        sheet.write_number(r, 5, balance as f64).map_err(x)?;
        sheet.write_string(r, 6, &tx.description).map_err(x)?;
    }
    let bytes = book.save_to_buffer().map_err(x)?;
    drop(book);
    let after_file = peak_rss_mb();

    let started = Instant::now();
    let cpu = thread_cpu_secs();
    let st = statement::parse::read(&bytes, "saoke.xlsx", None, usize::MAX).map_err(|e| anyhow::anyhow!(e))?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_secs() - cpu;
    anyhow::ensure!(st.count == rows, "read {} of {rows} rows", st.count);
    let read_peak = peak_rss_mb();
    println!(
        "statement read: {rows} rows of a {:.1} MB xlsx in {secs:.2} s = {:.0} rows/s ({cpu:.2} CPU s = {:.0} rows per CPU second); peak RSS {read_peak:.0} MB",
        bytes.len() as f64 / 1_048_576.0,
        rows as f64 / secs,
        rows as f64 / cpu.max(0.01),
    );
    let mut figures = vec![
        Figure::new("statement: read", "-", rows as f64 / secs, "rows/s")
            .target(Target::AtLeast(100_000.0))
            .note(format!("{rows} rows, {:.1} MB xlsx", bytes.len() as f64 / 1_048_576.0)),
        Figure::new("statement: read, peak memory", "-", read_peak, "MB")
            .target(Target::Below(200.0))
            .note("process peak RSS, the file in memory included"),
    ];
    drop(st);

    let s = scratch(None)?;
    let mut conn = s.pool.get()?;
    let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
    let (actor, bid, account) = bench_account(&mut conn, "bench@statement.vn", "push")?;
    let started = Instant::now();
    let id = statement::upload(&mut conn, &actor, &account, "saoke.xlsx", &bytes, true).map_err(e)?;
    let summary = statement::import(&mut conn, &actor, bid, id, None, true).map_err(e)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "statement import [sqlite]: {rows} rows parsed and stored in {secs:.2} s = {:.0} rows/s ({} new); peak RSS {:.0} MB (file in memory at {:.0} MB, process at start {:.0} MB)",
        rows as f64 / secs,
        summary.new,
        peak_rss_mb(),
        after_file,
        before
    );
    figures.push(Figure::new("statement: read and stored", "sqlite", rows as f64 / secs, "rows/s").note(format!(
        "{} new; peak RSS {:.0} MB",
        summary.new,
        peak_rss_mb()
    )));
    Ok(figures)
}
