//! Both backends agree with each other, and the CLI works on a real database file.

use diesel::prelude::*;
use std::collections::BTreeMap;

use diesel::sql_types::{Integer, Text};

/// A column as a database describes it.
#[derive(QueryableByName, Debug)]
struct Described {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Integer)]
    nullable: i32,
}

/// A column reduced to what must agree everywhere: (name, type family, nullable).
type Column = (String, String, bool);

/// The tables and columns `src/db/schema.rs` declares: what the code reads and writes.
fn declared() -> BTreeMap<String, Vec<Column>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/schema.rs"))
        .unwrap_or_else(|e| panic!("schema.rs: {e}"));
    let mut tables = BTreeMap::new();
    for block in text.split("diesel::table! {").skip(1) {
        let body = block.split("\n}").next().unwrap_or_default();
        let mut lines =
            body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'));
        let head = lines.next().unwrap_or_default();
        let name = head.split_whitespace().next().unwrap_or_default().to_string();
        let columns = lines
            .filter_map(|l| l.trim_end_matches(',').split_once(" -> "))
            .map(|(col, ty)| {
                let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                    Some(inner) => (inner.trim_end_matches('>'), true),
                    None => (ty, false),
                };
                let family = match ty {
                    "Int8" | "BigInt" => "int8",
                    "Int4" | "Integer" => "int4",
                    "Int2" | "SmallInt" => "int2",
                    "Text" | "Varchar" => "text",
                    "Bool" => "bool",
                    "Timestamp" => "timestamp",
                    "Date" => "date",
                    "Double" | "Float8" => "float8",
                    "Binary" | "Bytea" => "bytes",
                    other => panic!("{name}.{col}: add the type {other} to this test's families"),
                };
                (col.to_string(), family.to_string(), nullable)
            })
            .collect();
        tables.insert(name, columns);
    }
    tables
}

/// One backend's tables (diesel's own bookkeeping left out) and their columns.
fn described(app: &crate::support::TestApp) -> BTreeMap<String, Vec<Column>> {
    let sqlite = app.backend == hubgate::db::Backend::Sqlite;
    let list = if sqlite {
        "SELECT name, '' AS ty, 0 AS nullable FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%'"
    } else {
        "SELECT table_name::text AS name, '' AS ty, 0 AS nullable FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '__diesel%'"
    };
    let tables: Vec<Described> = app.with_conn(|c| diesel::sql_query(list).load(c)).unwrap_or_else(|e| panic!("{e}"));
    tables
        .into_iter()
        .map(|t| {
            let sql = if sqlite {
                format!(
                    "SELECT name, type AS ty, CASE WHEN \"notnull\" = 1 OR pk = 1 THEN 0 ELSE 1 END AS nullable \
                     FROM pragma_table_info('{}') ORDER BY cid",
                    t.name
                )
            } else {
                format!(
                    "SELECT column_name::text AS name, data_type::text AS ty, \
                     CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable \
                     FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{}' \
                     ORDER BY ordinal_position",
                    t.name
                )
            };
            let columns: Vec<Described> =
                app.with_conn(|c| diesel::sql_query(sql).load(c)).unwrap_or_else(|e| panic!("{}: {e}", t.name));
            let columns = columns
                .into_iter()
                .map(|c| {
                    let family =
                        family(sqlite, &c.ty).unwrap_or_else(|| panic!("{}.{}: type {}", t.name, c.name, c.ty));
                    (c.name, family.to_string(), c.nullable == 1)
                })
                .collect();
            (t.name, columns)
        })
        .collect()
}

/// A database's type name as a family schema.rs can name. SQLite stores every integer
/// in 64 bits, so there the widths are one family; PostgreSQL's must match exactly.
fn family(sqlite: bool, ty: &str) -> Option<&'static str> {
    let ty = ty.to_ascii_lowercase();
    Some(match ty.as_str() {
        "bigint" | "int8" => "int8",
        "integer" | "int" | "int4" => "int4",
        "smallint" | "int2" => "int2",
        "text" | "character varying" => "text",
        t if t.starts_with("varchar") => "text",
        "boolean" | "bool" => "bool",
        "timestamp" | "timestamp without time zone" | "datetime" => "timestamp",
        "date" => "date",
        "double precision" | "double" | "real" | "float" => "float8",
        "bytea" | "blob" => "bytes",
        _ => return None,
    })
    .map(|f| if sqlite && f.starts_with("int") { "int" } else { f })
}

/// The same tables with the same columns (names, order, types, nullability) on SQLite,
/// on PostgreSQL and in `schema.rs`, the one description of both (type drift between
/// backends once broke vaultwarden logins).
#[actix_web::test]
async fn sqlite_and_postgres_schemas_match() {
    let lite = crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
    let Some(pg) = crate::support::TestApp::start_pg().await else {
        return;
    };
    let code = declared();
    assert!(code.len() >= 50, "schema.rs read: {:?}", code.keys());
    let (on_sqlite, on_pg) = (described(&lite), described(&pg));
    let names = |m: &BTreeMap<String, Vec<Column>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&on_pg), names(&code), "PostgreSQL's tables and schema.rs's");
    assert_eq!(names(&on_sqlite), names(&code), "SQLite's tables and schema.rs's");
    let sqlite_view = |cols: &[Column]| -> Vec<Column> {
        cols.iter()
            .map(|(n, f, null)| (n.clone(), if f.starts_with("int") { "int".into() } else { f.clone() }, *null))
            .collect()
    };
    for (table, columns) in &code {
        assert_eq!(on_pg[table], *columns, "{table}: PostgreSQL differs from schema.rs");
        assert_eq!(on_sqlite[table], sqlite_view(columns), "{table}: SQLite differs from schema.rs");
    }
}

#[test]
fn create_user_from_the_command_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
            .args(args)
            .env("DATABASE_URL", format!("sqlite://{}/hub.db", dir.path().display()))
            .env("HUBGATE_DATA_DIR", dir.path())
            .env("HUBGATE_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("wait: {e}"))
    };
    let ok = run(
        &["create-user", "--email", "KyThuat@ipos.vn", "--name", "Nguyễn Văn Kỹ", "--role", "technician,leader"],
        "mat-khau-dai-2026\n",
    );
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("kythuat@ipos.vn"));
    let dup =
        run(&["create-user", "--email", "kythuat@ipos.vn", "--name", "X", "--role", "sale"], "mat-khau-dai-2026\n");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("Email này đã được dùng"));
    let bad_role =
        run(&["create-user", "--email", "a@ipos.vn", "--name", "X", "--role", "boss"], "mat-khau-dai-2026\n");
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("boss"));
    let short = run(&["create-user", "--email", "b@ipos.vn", "--name", "X", "--role", "sale"], "ngan\n");
    assert!(String::from_utf8_lossy(&short.stderr).contains("ít nhất 10 ký tự"));
    let migrate = run(&["migrate"], "");
    assert!(migrate.status.success());
    let typo = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"))
        .arg("migrate")
        .env("HUBGATE_BIDN", "x")
        .env("HUBGATE_DATA_DIR", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("HUBGATE_BIDN"));
}

db_test!(concurrent_read_then_write_transactions_all_commit, |app| {
    // Each transaction reads, then writes, as most services do. On SQLite a deferred
    // transaction would fail at once with "database is locked" when another writer
    // committed in between; `db::tx` must make every one of them wait its turn.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pool = app.state.pool.clone();
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
                let mut failures = Vec::new();
                for i in 0..50 {
                    let r = hubgate::db::tx(&mut conn, |c| -> QueryResult<()> {
                        use hubgate::db::schema::audit_log;
                        let _seen: i64 = audit_log::table.count().get_result(c)?;
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        hubgate::audit::record(
                            c,
                            &hubgate::audit::Actor::system("test"),
                            "probe",
                            format!("{w}-{i}"),
                            "write",
                            None,
                            None,
                        )
                    });
                    if let Err(e) = r {
                        failures.push(e.to_string());
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = writers.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let written: i64 = app
        .with_conn(|c| {
            use hubgate::db::schema::audit_log;
            audit_log::table.filter(audit_log::entity_type.eq("probe")).count().get_result(c)
        })
        .unwrap_or(0);
    assert_eq!(written, 200);
    // Nested inside an open transaction it is a savepoint: an inner failure rolls
    // back only the inner part.
    let outer = app.with_conn(|c| {
        hubgate::db::tx(c, |c| -> QueryResult<()> {
            hubgate::audit::record(c, &hubgate::audit::Actor::system("t"), "nest", 1, "outer", None, None)?;
            let inner = hubgate::db::tx(c, |c| -> QueryResult<()> {
                hubgate::audit::record(c, &hubgate::audit::Actor::system("t"), "nest", 2, "inner", None, None)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(inner.is_err());
            Ok(())
        })
    });
    assert!(outer.is_ok());
    let kept: Vec<String> = app
        .with_conn(|c| {
            use hubgate::db::schema::audit_log;
            audit_log::table.filter(audit_log::entity_type.eq("nest")).select(audit_log::action).load(c)
        })
        .unwrap_or_default();
    assert_eq!(kept, ["outer"]);
});

db_test!(a_connection_given_back_mid_transaction_is_not_reused, |app| {
    // A handler that panics inside a transaction hands its connection back to the pool
    // while unwinding. Reused, the next caller's `tx` would only open a savepoint inside
    // that never-committed transaction, and its writes would vanish.
    let pool = hubgate::db::pool(&app.database_url, 1).unwrap_or_else(|e| panic!("{e}"));
    let marker = |c: &mut hubgate::db::DbConn, what: &str| {
        hubgate::audit::record(
            c,
            &hubgate::audit::Actor::system("test"),
            "probe",
            what.to_string(),
            "write",
            None,
            None,
        )
    };
    let pool2 = pool.clone();
    let crashed = std::thread::spawn(move || {
        let mut conn = pool2.get().unwrap_or_else(|e| panic!("{e}"));
        let _: QueryResult<()> = hubgate::db::tx(&mut conn, |c| {
            marker(c, "lost")?;
            panic!("handler bug inside a transaction");
        });
    })
    .join();
    assert!(crashed.is_err(), "the writer thread should have panicked");
    let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
    hubgate::db::tx(&mut conn, |c| marker(c, "kept")).unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    // Read through another connection: only committed rows are visible there.
    let seen: Vec<String> = app.with_conn(|c| {
        use hubgate::db::schema::audit_log;
        audit_log::table
            .filter(audit_log::entity_type.eq("probe"))
            .select(audit_log::entity_id)
            .load(c)
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert_eq!(seen, vec!["kept".to_string()]);
});

#[derive(QueryableByName)]
struct MmapSize {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    mmap_size: i64,
}

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The settings every SQLite connection of the pool reads with (issue 17): the database
/// through a memory map, and statements planned once rather than again on each new
/// `LIMIT ?` binding (SQLite built with `SQLITE_ENABLE_QPSG`, `.cargo/config.toml`), with
/// no mutex SQLite would take on each call.
#[actix_web::test]
async fn sqlite_connections_map_the_file_and_plan_once() {
    let app = crate::support::TestApp::start(hubgate::db::Backend::Sqlite).await;
    let read = |sql: &str| -> Vec<String> {
        let rows: Vec<Pragma> =
            app.with_conn(|c| diesel::sql_query(sql).load(c)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| r.value).collect()
    };
    let mmap: Vec<MmapSize> =
        app.with_conn(|c| diesel::sql_query("PRAGMA mmap_size").load(c)).unwrap_or_else(|e| panic!("mmap_size: {e}"));
    assert_eq!(mmap.iter().map(|m| m.mmap_size).collect::<Vec<_>>(), [1 << 30]);
    let options = read("SELECT compile_options AS value FROM pragma_compile_options");
    assert!(options.iter().any(|o| o == "ENABLE_QPSG"), "SQLite built without ENABLE_QPSG: {options:?}");
    // No per-connection mutex (a connection serves one thread at a time) and no global
    // one on every allocation for statistics.
    for wanted in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"] {
        assert!(options.iter().any(|o| o == wanted), "SQLite built without {wanted}: {options:?}");
    }
}

// `db::in_any`: the values go to SQLite as one JSON array and to PostgreSQL as one
// array, so text with quotes, backslashes and diacritics must come through as typed.
db_test!(in_any_matches_exactly_the_values_given, |app| {
    use hubgate::db::schema::jobs;
    use hubgate::worker::models::{NewJob, insert};
    let kinds = ["a\"b", "c\\d", "Đã gửi", "[1]", "x"];
    let ids: Vec<i64> = app
        .with_conn(|c| {
            kinds
                .iter()
                .map(|kind| {
                    let now = hubgate::db::now();
                    let job =
                        NewJob { kind, payload: "{}", unique_key: None, run_at: now, max_attempts: 1, created_at: now };
                    insert(c, &job).map(|id| id.unwrap_or_default())
                })
                .collect::<QueryResult<Vec<i64>>>()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let kinds_of = |wanted: Vec<String>| -> Vec<String> {
        app.with_conn(|c| {
            jobs::table.filter(hubgate::db::in_any(jobs::kind, wanted)).order(jobs::id).select(jobs::kind).load(c)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(kinds_of(vec!["a\"b".into(), "Đã gửi".into(), "nothing".into()]), ["a\"b", "Đã gửi"]);
    assert_eq!(kinds_of(vec!["c\\d".into(), "[1]".into()]), ["c\\d", "[1]"]);
    assert!(kinds_of(Vec::new()).is_empty(), "an empty list matches nothing");
    let by_id: Vec<i64> = app
        .with_conn(|c| {
            let wanted = vec![ids[1], ids[3], -7];
            jobs::table.filter(hubgate::db::in_any(jobs::id, wanted)).order(jobs::id).select(jobs::id).load(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by_id, [ids[1], ids[3]]);
});

/// A connection of its own (a pooled one may have prepared the statements already),
/// and the text of every statement it prepares for its cache.
fn counting_prepares(
    app: &crate::support::TestApp,
) -> (hubgate::db::DbConn, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use diesel::connection::{Connection, InstrumentationEvent};
    let mut conn = r2d2::ManageConnection::connect(&hubgate::db::Manager::new(&app.state.config.database_url))
        .unwrap_or_else(|e| panic!("{e}"));
    let prepared: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = std::sync::Arc::clone(&prepared);
    conn.set_instrumentation(move |e: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::CacheQuery { sql, .. } = e {
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(sql.to_string());
        }
    });
    (conn, prepared)
}

// `db::cached`: the queue's claim, a `sql_query` diesel would parse and plan on every
// round, is prepared once per connection and still claims oldest first, once each.
db_test!(the_queue_prepares_its_claim_once_per_connection, |app| {
    use hubgate::worker::models::{NewJob, Outcome, claim, finish, finish_and_claim, insert};
    let (mut conn, prepared) = counting_prepares(&app);
    let now = hubgate::db::now();
    let lease = now + chrono::Duration::minutes(5);
    for kind in ["one", "two", "three", "four"] {
        let job = NewJob { kind, payload: "{}", unique_key: None, run_at: now, max_attempts: 1, created_at: now };
        insert(&mut conn, &job).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut jobs = claim(&mut conn, "w", 1, now, lease).unwrap_or_else(|e| panic!("{e}"));
    let mut ran = Vec::new();
    // The worker's round: the last job's success written, the next job claimed.
    for _ in 0..3 {
        assert_eq!(jobs.len(), 1, "one job a claim");
        ran.push(jobs[0].kind.clone());
        jobs = finish_and_claim(&mut conn, "w", &[jobs[0].id], 1, now, lease).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(jobs.len(), 1, "the fourth job");
    ran.push(jobs[0].kind.clone());
    let written = finish(&mut conn, "w", &[(jobs[0].id, Outcome::Done)], now).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written, 1);
    assert_eq!(ran, ["one", "two", "three", "four"], "oldest first, each once");
    let left = claim(&mut conn, "w", 5, now, now).unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "all done: {left:?}");
    let prepared = prepared.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let count = |start: &str| prepared.iter().filter(|sql| sql.starts_with(start)).count();
    assert_eq!(count("UPDATE jobs SET locked_until"), 1, "the claim, prepared once: {prepared:?}");
    let success = count("UPDATE \"jobs\" SET \"done_at\"") + count("UPDATE `jobs` SET `done_at`");
    assert_eq!(success, 1, "the success, prepared once: {prepared:?}");
    let together = count("WITH finished");
    assert_eq!(together, usize::from(app.state.config.database_url.starts_with("postgres")), "{prepared:?}");
});

// The request list's page reads its merchants' names and confirmations in subqueries
// of its select, and stays one statement prepared once per connection.
db_test!(the_request_lists_page_is_prepared_once_per_connection, |app| {
    use hubgate::hub::models::{RequestFilter, list_page};
    let open = crate::hub::seed_request(&app, "MOMO", "Phở Lý Quốc Sư", "received");
    let later = crate::hub::seed_request(&app, "VNPAY", "Bún Chả Hương Liên", "accepted");
    let (mut conn, prepared) = counting_prepares(&app);
    let all = RequestFilter::default();
    let mut pages = Vec::new();
    for (offset, limit) in [(0, 40), (0, 1), (1, 1)] {
        let (rows, total) = list_page(&mut conn, &all, offset, limit).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(total, 2);
        pages.push(rows.iter().map(|r| (r.id, r.merchant.clone().unwrap_or_default())).collect::<Vec<_>>());
    }
    let both = vec![(open, "Phở Lý Quốc Sư".to_string()), (later, "Bún Chả Hương Liên".to_string())];
    assert_eq!(pages, [both.clone(), both[..1].to_vec(), both[1..].to_vec()]);
    let prepared = prepared.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let page = prepared.iter().filter(|sql| sql.contains("SELECT merchants.name FROM merchants")).count();
    assert_eq!(page, 1, "the page, prepared once: {prepared:?}");
});

db_test!(a_round_finishes_only_its_own_jobs_and_never_reclaims_them, |app| {
    use hubgate::worker::models::{NewJob, claim, finish_and_claim, insert, job};
    let now = hubgate::db::now();
    let later = now + chrono::Duration::seconds(1);
    let lease = now + chrono::Duration::minutes(5);
    let ids: Vec<i64> = app
        .with_conn(|c| {
            ["mine", "expired", "theirs", "next"]
                .into_iter()
                .map(|kind| {
                    let job =
                        NewJob { kind, payload: "{}", unique_key: None, run_at: now, max_attempts: 3, created_at: now };
                    insert(c, &job).map(|id| id.unwrap_or(0))
                })
                .collect::<diesel::QueryResult<Vec<i64>>>()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (mine, expired, theirs, next) = (ids[0], ids[1], ids[2], ids[3]);
    let claimed = app
        .with_conn(|c| {
            let mut got = claim(c, "w", 1, now, lease)?;
            // A lease that has run out by the next round: due again, but finished here.
            got.extend(claim(c, "w", 1, now, now)?);
            got.extend(claim(c, "other", 1, now, lease)?);
            // "theirs", passed by mistake, is another worker's to finish.
            finish_and_claim(c, "w", &[mine, expired, theirs], 5, later, lease)
                .map(|round| (got.iter().map(|j| j.id).collect::<Vec<_>>(), round))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.0, [mine, expired, theirs]);
    assert_eq!(claimed.1.iter().map(|j| j.id).collect::<Vec<_>>(), [next], "only the due job no one holds");
    let state = |id| app.with_conn(|c| job(c, id)).map(|j| (j.done_at.is_some(), j.attempts, j.locked_by));
    let w = Some("w".to_string());
    assert_eq!(state(mine).ok(), Some((true, 1, w.clone())));
    assert_eq!(state(expired).ok(), Some((true, 1, w)), "finished, not claimed a second time");
    assert_eq!(state(theirs).ok(), Some((false, 1, Some("other".to_string()))));
});
