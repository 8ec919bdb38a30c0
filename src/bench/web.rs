//! `hubgate bench web`: our pages under an HTTP load generator (wrk), each beside the
//! ceiling of our own stack on the same machine in the same run: TechEmpower's
//! "Fortunes" test (read the 12 rows of a table, add one, sort, render escaped HTML)
//! built on actix-web + diesel (our pool) + askama, served only by this bench.

use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use askama::Template;
use diesel::{ExpressionMethods, RunQueryDsl};

use super::{Scratch, bench_account, bench_tx, scratch};
use crate::db::{DbConn, Pool};

/// What the bench measured for one page on one database.
pub struct Row {
    pub page: String,
    pub backend: &'static str,
    pub rps: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// CPU time this process spent per answered request (every thread: actix, the
    /// blocking pool, and SQLite inside it; not PostgreSQL's server, not wrk). It moves
    /// less than req/s when the machine is busy (15–20% against up to half), so it is
    /// the steadier figure for A/B comparisons.
    pub cpu_us: f64,
}

/// CPU seconds of this whole process so far.
fn process_cpu_seconds() -> f64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(f64::NAN)
}

/// What the load generator reports of one run.
#[derive(Debug, PartialEq)]
struct Wrk {
    rps: f64,
    p99_ms: f64,
    errors: u64,
    /// Requests answered in the whole run.
    requests: u64,
}

/// The settings of one run of the bench.
pub struct Options {
    pub requests: usize,
    pub transactions: usize,
    pub mails: usize,
    pub seconds: u64,
    pub connections: usize,
    /// Only the pages whose name contains this (and the bare page).
    pub only: String,
}

#[derive(diesel::QueryableByName, Clone)]
struct Fortune {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    message: String,
}

#[derive(Template)]
#[template(path = "bench/fortunes.html")]
struct FortunesPage {
    fortunes: Vec<Fortune>,
}

const FORTUNES: [&str; 12] = [
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "フレームワークのベンチマーク",
];

/// The bench's own table, in the scratch database only (never in a migration).
fn create_fortunes(conn: &mut DbConn) -> anyhow::Result<()> {
    crate::with_conn!(conn, |c| {
        diesel::sql_query("CREATE TABLE fortune (id BIGINT PRIMARY KEY, message TEXT NOT NULL)").execute(c)?;
        for (i, m) in FORTUNES.iter().enumerate() {
            diesel::sql_query("INSERT INTO fortune (id, message) VALUES ($1, $2)")
                .bind::<diesel::sql_types::BigInt, _>(i as i64 + 1)
                .bind::<diesel::sql_types::Text, _>(*m)
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

async fn fortunes(pool: actix_web::web::Data<Pool>) -> actix_web::HttpResponse {
    let pool = pool.get_ref().clone();
    let rows = actix_web::web::block(move || -> anyhow::Result<Vec<Fortune>> {
        let mut conn = pool.get()?;
        Ok(crate::with_conn!(&mut *conn, |c| diesel::sql_query("SELECT id, message FROM fortune").load(c))?)
    })
    .await;
    let Ok(Ok(mut fortunes)) = rows else {
        return actix_web::HttpResponse::InternalServerError().finish();
    };
    fortunes.push(Fortune { id: 0, message: "Additional fortune added at request time.".into() });
    fortunes.sort_by(|a, b| a.message.cmp(&b.message));
    match (FortunesPage { fortunes }).render() {
        Ok(html) => actix_web::HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(_) => actix_web::HttpResponse::InternalServerError().finish(),
    }
}

/// The Fortunes page alone on a 127.0.0.1 port, one HTTP worker like the app's.
fn serve_fortunes(pool: Pool) -> anyhow::Result<super::Served> {
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(pool.clone()))
            .route("/fortunes", actix_web::web::get().to(fortunes))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))?;
    Ok(super::Served::spawn(server.addrs()[0], server.run()))
}

/// `count` requests over `count / 5` merchants, spread over every partner, state and
/// the last year, as the desk accumulates them.
fn seed_requests(conn: &mut DbConn, count: usize, sale_id: i64) -> anyhow::Result<()> {
    use crate::db::schema::{merchants, partners, requests};
    use diesel::QueryDsl;
    let partner_ids: Vec<i64> = partners::table.select(partners::id).load(conn)?;
    anyhow::ensure!(!partner_ids.is_empty(), "the migrations seed the partners");
    let merchants_n = (count / 5).max(1);
    let now = crate::db::now();
    crate::db::tx(conn, |c| -> anyhow::Result<()> {
        for chunk in (0..merchants_n).collect::<Vec<_>>().chunks(2000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let name = format!("{} {i}", super::SHOPS[i % super::SHOPS.len()]);
                    (
                        merchants::search_key.eq(crate::mail::inbound::classify::fold(&name)),
                        merchants::name.eq(name),
                        merchants::phone.eq(format!("09{:08}", i)),
                        merchants::phone_key.eq(format!("09{:08}", i)),
                        merchants::created_at.eq(now),
                        merchants::updated_at.eq(now),
                    )
                })
                .collect();
            crate::with_conn!(c, |x| diesel::insert_into(merchants::table).values(&rows).execute(x))?;
        }
        let states = crate::hub::state::State::ALL;
        for chunk in (0..count).collect::<Vec<_>>().chunks(2000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let at = now - chrono::Duration::minutes((count - i) as i64 * 5);
                    (
                        requests::partner_id.eq(partner_ids[i % partner_ids.len()]),
                        requests::merchant_id.eq((i % merchants_n) as i64 + 1),
                        requests::state.eq(states[i % states.len()].code()),
                        requests::version.eq(1i64),
                        requests::opened_on.eq(at),
                        requests::assignee_id.eq((i % 3 == 0).then_some(sale_id)),
                        requests::created_by.eq(Some(sale_id)),
                        requests::state_since.eq(at),
                        requests::created_at.eq(at),
                        requests::updated_at.eq(at),
                    )
                })
                .collect();
            crate::with_conn!(c, |x| diesel::insert_into(requests::table).values(&rows).execute(x))?;
        }
        Ok(())
    })
}

/// The session cookie of `email` after logging in through the login form.
async fn login(base: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let cookie_of = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect()
    };
    let form = http.get(format!("{base}/login")).send().await?;
    let cookies = cookie_of(&form).join("; ");
    let html = form.text().await?;
    let csrf = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the login form carries a CSRF token")?
        .to_string();
    let done = http
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, cookies)
        .form(&[("_csrf", csrf.as_str()), ("email", email), ("password", password)])
        .send()
        .await?;
    anyhow::ensure!(done.status() == reqwest::StatusCode::SEE_OTHER, "login of {email}: {}", done.status());
    cookie_of(&done).into_iter().next().context("login sets the session cookie")
}

/// Runs wrk against `url` with one thread and `connections` connections.
fn wrk(url: &str, headers: &[String], seconds: u64, connections: usize) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().context("cannot run wrk (Debian: apt-get install wrk)")?;
    anyhow::ensure!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Milliseconds of a wrk duration such as `812.00us`, `3.41ms` or `1.02s`.
fn wrk_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> anyhow::Result<Wrk> {
    let mut rps = None;
    let mut p99 = None;
    let mut errors = 0u64;
    let mut requests = None;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => rps = n.parse().ok(),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["99%", t] => p99 = wrk_ms(t),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>()
            }
            _ => {}
        }
    }
    Ok(Wrk {
        rps: rps.context("wrk printed no Requests/sec")?,
        p99_ms: p99.context("wrk printed no 99% latency")?,
        errors,
        requests: requests.context("wrk printed no count of requests")?,
    })
}

/// Seeds one database and measures every page on it.
async fn one(pg_admin: Option<String>, o: &Options) -> anyhow::Result<Vec<Row>> {
    let backend = if pg_admin.is_some() { "postgres" } else { "sqlite" };
    let mut s: Scratch = scratch(pg_admin.as_deref())?;
    s.config.api_rate_per_second = 1_000_000;
    let pool = crate::db::pool(&s.config.database_url, 16)?;
    let state = crate::web::AppState::new(s.config.clone(), pool.clone())?;
    let e = |e: crate::error::AppError| anyhow::anyhow!("{e:?}");
    let started = Instant::now();
    const PASSWORD: &str = "mat-khau-bench-2026";
    let (request_id, business_id, key) = {
        let mut conn = pool.get()?;
        create_fortunes(&mut conn)?;
        let sale = crate::accounts::service::create_user(
            &mut conn,
            &crate::audit::Actor::system("bench"),
            &crate::accounts::service::UserInput {
                email: "sale@bench.vn".into(),
                name: "Kinh doanh".into(),
                password: PASSWORD.into(),
                roles: vec![crate::accounts::Role::Sale],
            },
        )
        .map_err(e)?;
        seed_requests(&mut conn, o.requests, sale.id)?;
        let known = crate::mail::inbound::service::Known::load(&mut conn).map_err(|e| anyhow::anyhow!("{e}"))?;
        for i in 0..o.mails {
            crate::mail::inbound::service::ingest_with(
                &mut conn,
                &s.config.mail,
                &known,
                &super::generated_mail(i),
                "bench",
                None,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let (actor, business_id, account) = bench_account(&mut conn, "merchant@bench.vn", "push")?;
        let now = crate::db::now();
        let step = (30 * 86_400 * 1000 / o.transactions.max(1) as i64).max(1);
        for chunk in (0..o.transactions).collect::<Vec<_>>().chunks(1_000) {
            let page: Vec<_> =
                chunk.iter().map(|&i| bench_tx(i, now - chrono::Duration::milliseconds(step * i as i64))).collect();
            crate::banking::sync::apply_page(&mut conn, &account, &page, "bench").map_err(e)?;
        }
        let (_, key) = crate::api::keys::create(&mut conn, &s.config, &actor, business_id, "bench").map_err(e)?;
        // A request in the middle of the list, as someone opens from a search.
        ((o.requests / 2).max(1) as i64, business_id, key)
    };
    eprintln!(
        "bench web [{backend}]: {} requests, {} mails, {} transactions seeded in {:.0} s",
        o.requests,
        o.mails,
        o.transactions,
        started.elapsed().as_secs_f64()
    );

    let (served_app, served_bare) = (super::serve_in_process(&state)?, serve_fortunes(pool)?);
    let (app, bare) = (format!("http://{}", served_app.addr), format!("http://{}", served_bare.addr));
    let sale = format!("Cookie: {}", login(&app, "sale@bench.vn", PASSWORD).await?);
    let merchant = format!("Cookie: {}", login(&app, "merchant@bench.vn", PASSWORD).await?);
    let api = format!("Authorization: Apikey {key}");
    let from = crate::fmt::local_date(crate::db::now() - chrono::Duration::days(31)).format("%Y-%m-%d");
    let pages: Vec<(String, String, Option<&String>)> = vec![
        ("Fortunes (actix-web + diesel + askama)".into(), format!("{bare}/fortunes"), None),
        // Nothing but the session: what every signed-in request pays before its page.
        ("/healthz (đã đăng nhập)".into(), format!("{app}/healthz"), Some(&sale)),
        ("/requests (mặc định)".into(), format!("{app}/requests"), Some(&sale)),
        ("/requests?state=deploying&q=pho".into(), format!("{app}/requests?state=deploying&q=pho"), Some(&sale)),
        (format!("/requests/{request_id}"), format!("{app}/requests/{request_id}"), Some(&sale)),
        ("/mail".into(), format!("{app}/mail"), Some(&sale)),
        ("/dashboard".into(), format!("{app}/dashboard"), Some(&sale)),
        (
            format!("/app/b/{business_id}/transactions"),
            format!("{app}/app/b/{business_id}/transactions"),
            Some(&merchant),
        ),
        ("GET /v2/transactions".into(), format!("{app}/v2/transactions?fromDate={from}&pageSize=100"), Some(&api)),
    ];
    let mut rows = Vec::new();
    let bare_name = pages[0].0.clone();
    for (page, url, header) in pages.into_iter().filter(|(p, _, _)| *p == bare_name || p.contains(&o.only)) {
        // Each page must answer 200 as the role sees it before it is measured.
        let probe = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let mut req = probe.get(&url);
        if let Some((name, value)) = header.and_then(|h| h.split_once(": ")) {
            req = req.header(name, value);
        }
        let status = req.send().await?.status();
        anyhow::ensure!(status.is_success(), "{page}: {status} before the run");
        let headers: Vec<String> = header.into_iter().cloned().collect();
        let (url, seconds, connections) = (url.clone(), o.seconds, o.connections);
        let cpu_before = process_cpu_seconds();
        let w = tokio::task::spawn_blocking(move || wrk(&url, &headers, seconds, connections)).await??;
        let cpu_us = (process_cpu_seconds() - cpu_before) * 1e6 / w.requests.max(1) as f64;
        eprintln!("  {page}: {:.0} req/s, p99 {:.1} ms, {cpu_us:.0} µs CPU a request", w.rps, w.p99_ms);
        rows.push(Row { page, backend, rps: w.rps, p99_ms: w.p99_ms, errors: w.errors, cpu_us });
    }
    // Before the scratch database goes: nothing may still be using it.
    served_app.stop().await;
    served_bare.stop().await;
    drop(state);
    Ok(rows)
}

/// Measures every page on SQLite and, when given, PostgreSQL.
pub fn run(pg_admin: Option<&str>, o: &Options) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let backends: Vec<Option<String>> = std::iter::once(None).chain(pg_admin.map(|u| Some(u.to_string()))).collect();
    for backend in backends {
        rows.extend(actix_web::rt::System::new().block_on(one(backend, o))?);
    }
    Ok(rows)
}

/// The table: each page's requests per second as a share of the bare Fortunes page
/// on the same database in the same run.
pub fn print(rows: &[Row], o: &Options) {
    println!(
        "HTTP, wrk -t1 -c{} -d{}s; {} requests, {} mails, {} transactions",
        o.connections, o.seconds, o.requests, o.mails, o.transactions
    );
    println!(
        "{:<42} {:>9} {:>10} {:>9} {:>8} {:>7} {:>10}",
        "page", "database", "req/s", "p99 ms", "of bare", "errors", "CPU µs/req"
    );
    for r in rows {
        let bare = rows.iter().find(|b| b.backend == r.backend).map(|b| b.rps).unwrap_or(r.rps);
        println!(
            "{:<42} {:>9} {:>10.0} {:>9.1} {:>7.0}% {:>7} {:>10.0}",
            r.page,
            r.backend,
            r.rps,
            r.p99_ms,
            100.0 * r.rps / bare.max(f64::MIN_POSITIVE),
            r.errors,
            r.cpu_us
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 5s test @ http://127.0.0.1:1/fortunes\n  1 threads and 16 connections\n\
                   Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   352.21us  120.1us   5.13ms   91.2%\n\
                   Latency Distribution\n     50%  330.00us\n     75%  390.00us\n     90%  450.00us\n     99%    1.20ms\n\
                   231230 requests in 5.00s, 314.5MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
                   Non-2xx or 3xx responses: 4\nRequests/sec:  46245.32\nTransfer/sec:     62.90MB\n";
        assert_eq!(parse_wrk(out).ok(), Some(Wrk { rps: 46245.32, p99_ms: 1.2, errors: 7, requests: 231230 }));
        assert_eq!(wrk_ms("812.00us"), Some(0.812));
        assert_eq!(wrk_ms("1.50s"), Some(1500.0));
        assert!(parse_wrk("Running 5s test\n").is_err());
    }
}
