//! The command line: `hubgate [serve] | migrate | create-user | rotate-key | …`.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::accounts::Role;
use crate::accounts::service::{self, UserInput};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::AppError;
use crate::web::AppState;

#[derive(Parser, Debug)]
#[command(name = "hubgate", version, about = "Hub connection desk and bank-sync notifications (web app, worker, CLI)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web app (the default when no command is given).
    Serve {
        /// Fill the database with the demo data set first (idempotent).
        #[arg(long)]
        demo: bool,
    },
    /// Fill the database with a realistic Vietnamese demo data set (idempotent).
    DemoData,
    /// Run only the worker and the scheduler (a second node, or a dedicated worker box).
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a staff account; the password is asked on a terminal or read from stdin.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Comma-separated roles: admin, sale, leader, technician, accountant.
        #[arg(long, value_delimiter = ',', required = true)]
        role: Vec<Role>,
    },
    /// Re-seal every stored secret under the current secret_key, reading with it or any
    /// of old_secret_keys (idempotent; prints what it did per table and column).
    RotateKey {
        /// Leave values that open under no configured key as they are (listed) instead
        /// of refusing to run.
        #[arg(long)]
        skip_unreadable: bool,
    },
    /// Print throughput figures (throw-away databases; nothing of yours is touched).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
        /// Also write the bench's figures as JSON to this file (`bench all` reads them
        /// from each bench it runs in a process of its own).
        #[arg(long, global = true, hide = true)]
        figures_out: Option<std::path::PathBuf>,
    },
    /// Write the month's workbook of connected points, e.g. `hubgate report 2026-10 -o list.xlsx`.
    Report {
        /// YYYY-MM (a month in Asia/Ho_Chi_Minh).
        month: String,
        /// Output file (default: diem-ket-noi-YYYY-MM.xlsx).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Partner mail from files.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Bank statements (sao kê) downloaded from internet banking.
    Statement {
        #[command(subcommand)]
        command: StatementCommand,
    },
    /// The bank catalogue (the VietQR list).
    Banks {
        #[command(subcommand)]
        command: BanksCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum StatementCommand {
    /// Import statement files (xlsx, xls, csv) into a linked account with the remembered
    /// or detected column mapping; a line (or JSON object) per file with its counts.
    Import {
        /// The linked account's id (bank_accounts.id).
        #[arg(long)]
        account: i64,
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// `text` (a line per file) or `json` (one JSON object per file).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Import history without sending notifications for it.
        #[arg(long)]
        silent: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BanksCommand {
    /// Refresh the list from our CSV (bin,code,short_name,name,casso_code_name,official_api)
    /// or VietQR's JSON (api.vietqr.io/v2/banks); banks are matched by BIN.
    Import { file: std::path::PathBuf },
    /// Print the list.
    List,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Every bench below in one run, each in a process of its own, then one table of
    /// every figure beside its target.
    All {
        /// Also on PostgreSQL (default: HUBGATE_TEST_PG when set).
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
        /// Smaller sizes and shorter runs (a few minutes instead of half an hour);
        /// time targets set at a million rows are scaled to the rows run.
        #[arg(long)]
        quick: bool,
    },
    /// Seconds and peak memory to write the month's workbook.
    Report {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// Seconds and peak memory to reconcile a month against a partner's statement.
    Reconcile {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// Merchant search and pages over 100,000 points.
    Desk {
        #[arg(long, default_value_t = 100_000)]
        points: usize,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// No-op jobs/s through enqueue → claim → complete, and mails/s through the file transport.
    Queue {
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        #[arg(long, default_value_t = 2_000)]
        mails: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Also on PostgreSQL (default: HUBGATE_TEST_PG when set).
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// Push → webhook receipt latency (p50/p95/p99) at a steady rate, and deliveries/s.
    Notify {
        #[arg(long, default_value_t = 200)]
        rate: usize,
        #[arg(long, default_value_t = 60)]
        seconds: usize,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// The Casso-compatible API: requests/s and p99 of /v2/transactions and /v2/userInfo.
    Api {
        #[arg(long, default_value_t = 1_000_000)]
        transactions: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// Our pages under wrk beside a bare actix-web + diesel + askama Fortunes page
    /// (TechEmpower's test) measured in the same run: requests/s, p99 and the share of bare.
    Web {
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        #[arg(long, default_value_t = 1_000_000)]
        transactions: usize,
        #[arg(long, default_value_t = 2_000)]
        mails: usize,
        /// Seconds of load per page.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Measures only the pages whose name contains this (the bare page always), to
        /// profile one page.
        #[arg(long, default_value = "")]
        only: String,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// Rows/s and peak memory reading and importing a bank statement xlsx.
    Statement {
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
    },
    /// Transactions/s through the de-duplicating insert, new and already known.
    Sync {
        #[arg(long, default_value_t = 100_000)]
        transactions: usize,
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
    /// Messages/s through ingest (parse, classify, thread, persist): one by one, in
    /// batches, and one by one from concurrent senders.
    Mail {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Concurrent one-by-one senders (1: skip that figure).
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Also on PostgreSQL: a server URL whose role may create databases
        /// (default: HUBGATE_TEST_PG when set).
        #[arg(long, env = "HUBGATE_TEST_PG")]
        pg: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// Ingest .eml files, directories or Maildir folders (already stored mail is a duplicate).
    Import {
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// `text` (a line per message) or `json` (one JSON object per message).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Connect to the IMAP mailbox (imap_* settings), log in and open it read-only;
    /// prints what the server offers and the reading state. Changes nothing.
    ImapCheck,
    /// Read the IMAP mailbox once: store new mail and move it to the processed folder
    /// (waits for no other node: fails when one is reading it).
    ImapFetch {
        /// `text` (a line per message) or `json` (one JSON object per message).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

impl clap::builder::ValueParserFactory for Role {
    type Parser = clap::builder::ValueParser;
    fn value_parser() -> Self::Parser {
        clap::builder::ValueParser::new(|s: &str| s.parse::<Role>())
    }
}

/// Loads config, sets up logging and the database, and runs the command; `serve`
/// listens on the `sockets` a service manager handed over, if any.
pub fn run(cli: Cli, sockets: crate::web::HandedOver) -> anyhow::Result<()> {
    let config = Config::load()?;
    // async-imap traces every command it sends, the IMAP LOGIN with its password
    // included: silenced whatever the configured filter says.
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)?.add_directive("async_imap=off".parse()?);
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
    // Benches use throw-away databases of their own.
    if let Some(Command::Bench { what, figures_out }) = &cli.command {
        let figures = match what {
            BenchCommand::All { pg, quick } => {
                let figures = crate::bench::all::run(pg.as_deref(), *quick)?;
                print!("{}", crate::bench::figures::table(&figures));
                figures
            }
            BenchCommand::Mail { count, senders, pg } => crate::bench::mail(pg.as_deref(), *count, *senders)?,
            BenchCommand::Desk { points, pg } => {
                crate::bench::desk(pg.as_deref(), *points)?;
                Vec::new()
            }
            BenchCommand::Report { rows, pg } => crate::bench::report(pg.as_deref(), *rows)?,
            BenchCommand::Reconcile { rows, pg } => crate::bench::reconcile(pg.as_deref(), *rows)?,
            BenchCommand::Web { requests, transactions, mails, seconds, connections, only, pg } => {
                let o = crate::bench::web::Options {
                    requests: *requests,
                    transactions: *transactions,
                    mails: *mails,
                    seconds: *seconds,
                    connections: *connections,
                    only: only.clone(),
                };
                let rows = crate::bench::web::run(pg.as_deref(), &o)?;
                crate::bench::web::print(&rows, &o);
                crate::bench::web_figures(&rows)
            }
            BenchCommand::Statement { rows } => crate::bench::statement(*rows)?,
            BenchCommand::Sync { transactions, pg } => crate::bench::sync(pg.as_deref(), *transactions)?,
            BenchCommand::Api { transactions, seconds, concurrency, pg } => {
                crate::bench::api(pg.as_deref(), *transactions, *seconds, *concurrency)?;
                Vec::new()
            }
            BenchCommand::Notify { rate, seconds, pg } => crate::bench::notify(pg.as_deref(), *rate, *seconds)?,
            BenchCommand::Queue { jobs, mails, concurrency, pg } => {
                crate::bench::queue(pg.as_deref(), *jobs, *mails, *concurrency)?
            }
        };
        if let Some(path) = figures_out {
            std::fs::write(path, serde_json::to_vec(&figures)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(());
    }
    let long_running = matches!(cli.command, None | Some(Command::Serve { .. } | Command::Worker));
    let pool = crate::db::pool_keeping(&config.database_url, config.db_pool_size, u32::from(long_running))?;
    {
        let mut conn = pool.get()?;
        for name in crate::app::migrate(&mut conn)? {
            tracing::info!(migration = %name, "applied migration");
        }
    }
    let state = AppState::new(config, pool)?;
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Serve { demo } => {
            if demo {
                print!("{}", seed_demo(&state)?);
            }
            actix_web::rt::System::new().block_on(crate::web::serve(state, sockets))
        }
        Command::DemoData => {
            print!("{}", seed_demo(&state)?);
            Ok(())
        }
        Command::Worker => run_worker(state),
        Command::Report { month, output } => {
            let month = crate::reports::Month::parse(&month)
                .with_context(|| format!("`{month}` is not a month like 2026-10"))?;
            let mut conn = state.pool.get()?;
            let path = output.unwrap_or_else(|| month.file_name().into());
            let file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
            let listed = crate::reports::write_workbook(&mut conn, month, std::io::BufWriter::new(file))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}: {} connections -> {}", month, listed.total(), path.display());
            Ok(())
        }
        Command::RotateKey { skip_unreadable } => rotate_key(&state, skip_unreadable),
        Command::Migrate => {
            println!("database is up to date");
            Ok(())
        }
        Command::Mail { command: MailCommand::Import { paths, format } } => import_mail(&state, &paths, &format),
        Command::Mail { command: MailCommand::ImapCheck } => imap_check(&state),
        Command::Mail { command: MailCommand::ImapFetch { format } } => imap_fetch(&state, &format),
        Command::Statement { command: StatementCommand::Import { account, files, format, silent } } => {
            import_statements(&state, account, &files, &format, silent)
        }
        Command::Bench { .. } => unreachable!("handled before the database is opened"),
        Command::Banks { command: BanksCommand::Import { file } } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut conn = state.pool.get()?;
            match crate::banking::catalogue::import(&mut conn, &bytes) {
                Ok((added, updated)) => {
                    println!("{}: {added} banks added, {updated} updated", file.display());
                    Ok(())
                }
                Err(e) => anyhow::bail!("{}: {e}", file.display()),
            }
        }
        Command::Banks { command: BanksCommand::List } => {
            let mut conn = state.pool.get()?;
            for b in crate::banking::catalogue::all(&mut conn)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    b.bin,
                    b.code,
                    b.short_name,
                    b.casso_code_name,
                    if b.official_api { "open-api" } else { "" }
                );
            }
            Ok(())
        }
        Command::CreateUser { email, name, role } => {
            let password = read_password()?;
            let mut conn = state.pool.get()?;
            let input = UserInput { email, name, password, roles: role };
            match service::create_user(&mut conn, &Actor::system("cli"), &input) {
                Ok(user) => {
                    println!("created user {} (id {}) with roles {}", user.email, user.id, user.roles().stored());
                    Ok(())
                }
                Err(AppError::Validation(msg)) => anyhow::bail!("{msg}"),
                Err(e) => Err(anyhow::anyhow!("{e}: {:?}", e)),
            }
        }
    }
}

/// `hubgate rotate-key`: a line per sealed column; exit 1 (changing nothing) when a
/// value opens under no configured key and `--skip-unreadable` was not given.
fn rotate_key(state: &AppState, skip_unreadable: bool) -> anyhow::Result<()> {
    use crate::secrets::rotate::{self, RotateError};
    let mut conn = state.pool.get()?;
    let keys = state.config.keyring();
    let actor = Actor::system("cli rotate-key");
    let report = match rotate::rotate(&mut conn, &keys, &actor, skip_unreadable, rotate::BATCH) {
        Ok(r) => r,
        Err(RotateError::Unreadable(bad)) => {
            for u in &bad {
                eprintln!("unreadable\t{u}");
            }
            anyhow::bail!(
                "{} sealed value(s) open under no configured key (add the key that sealed them to old_secret_keys, \
                 or run again with --skip-unreadable to leave them as they are); nothing was changed",
                bad.len()
            );
        }
        Err(e) => return Err(e.into()),
    };
    println!("key\t{}", report.key_id);
    for c in &report.columns {
        println!(
            "{}.{}\tresealed {}\talready current {}\tchanged meanwhile {}\tunreadable {}",
            c.table, c.column, c.resealed, c.current, c.changed, c.unreadable
        );
    }
    for u in &report.skipped {
        eprintln!("skipped\t{u}");
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Mật khẩu: ")?;
        let second = rpassword::prompt_password("Nhập lại mật khẩu: ")?;
        anyhow::ensure!(first == second, "passwords do not match");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// `hubgate mail import`: one line (or JSON object) per message; exit 1 if any failed.
/// Messages are stored in batches (two commits per batch, not per message).
fn import_mail(state: &AppState, paths: &[std::path::PathBuf], format: &str) -> anyhow::Result<()> {
    use crate::mail::inbound::{batch, maildir, service};
    let mut conn = state.pool.get()?;
    let mut failures = 0usize;
    let known = service::Known::load(&mut conn).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pending: batch::Batcher<String> = batch::Batcher::new();
    // Stores what was collected, prints it; returns how many failed.
    let flush = |conn: &mut crate::db::DbConn, pending: &mut batch::Batcher<String>| -> anyhow::Result<usize> {
        let done = pending.ingest(conn, &state.config.mail, &known, "cli").map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(done.iter().map(|(shown, report)| usize::from(!print_report(report, shown, format))).sum())
    };
    for path in paths {
        let files = maildir::message_files(path).with_context(|| format!("cannot read {}", path.display()))?;
        for file in files {
            let shown = file.display().to_string();
            match std::fs::read(&file) {
                Ok(raw) => {
                    if pending.push(shown.clone(), raw, Some(shown)) {
                        failures += flush(&mut conn, &mut pending)?;
                    }
                }
                Err(e) => {
                    // Lines stay in file order: what was read before is stored first.
                    failures += flush(&mut conn, &mut pending)?;
                    let report = service::IngestReport {
                        file: Some(shown.clone()),
                        status: "unreadable".into(),
                        error: Some(format!("cannot read file: {e}")),
                        ..Default::default()
                    };
                    if !print_report(&report, &shown, format) {
                        failures += 1;
                    }
                }
            }
        }
    }
    failures += flush(&mut conn, &mut pending)?;
    anyhow::ensure!(failures == 0, "{failures} message(s) could not be processed (kept raw; see /mail/unreadable)");
    Ok(())
}

/// `hubgate statement import`: each file kept and imported as the web page does; a
/// file that cannot be imported is reported and changes nothing, the others go on.
fn import_statements(
    state: &AppState,
    account_id: i64,
    files: &[std::path::PathBuf],
    format: &str,
    silent: bool,
) -> anyhow::Result<()> {
    use crate::banking::statement;
    let mut conn = state.pool.get()?;
    let account = crate::banking::models::account(&mut conn, account_id)
        .map_err(|_| anyhow::anyhow!("no bank account with id {account_id}"))?;
    let actor = Actor::system("cli statement import");
    let mut failures = 0usize;
    for path in files {
        let shown = path.display().to_string();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let outcome = std::fs::read(path).map_err(|e| format!("không đọc được tệp: {e}")).and_then(|bytes| {
            // One transaction: a file that cannot be imported leaves no trace.
            crate::db::tx(&mut conn, |conn| -> crate::error::AppResult<statement::Summary> {
                let id = statement::upload(conn, &actor, &account, &name, &bytes, silent)?;
                statement::import(conn, &actor, account.business_id, id, None, silent)
            })
            .map_err(|e| match e {
                AppError::Validation(m) => m,
                other => other.to_string(),
            })
        });
        match (&outcome, format) {
            (Ok(s), "json") => println!(
                "{}",
                serde_json::json!({"file": shown, "import_id": s.import_id, "new": s.new, "known": s.known,
                    "skipped": s.skipped.len(), "skipped_rows": s.skipped})
            ),
            (Ok(s), _) => println!("{shown}\tnew {}\tknown {}\tskipped {}", s.new, s.known, s.skipped.len()),
            (Err(e), "json") => println!("{}", serde_json::json!({"file": shown, "error": e})),
            (Err(e), _) => println!("{shown}\terror\t{e}"),
        }
        failures += usize::from(outcome.is_err());
    }
    anyhow::ensure!(failures == 0, "{failures} file(s) could not be imported (nothing of them was stored)");
    Ok(())
}

/// One line (or JSON object) per ingested message; false when it could not be processed.
fn print_report(report: &crate::mail::inbound::service::IngestReport, shown: &str, format: &str) -> bool {
    if format == "json" {
        let line = serde_json::json!({
            "file": report.file, "message_id": report.message_id, "from": report.from,
            "subject": report.subject, "status": report.status, "partner": report.partner,
            "kind": report.kind, "thread_id": report.thread_id, "request_id": report.request_id,
            "error": report.error,
        });
        println!("{line}");
    } else {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            shown,
            report.status,
            report.partner.as_deref().unwrap_or("-"),
            report.kind.as_deref().unwrap_or("-"),
            report.error.as_deref().or(report.subject.as_deref()).unwrap_or("")
        );
    }
    !matches!(report.status.as_str(), "unreadable" | "too_large" | "received")
}

fn imap_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?)
}

/// `hubgate mail imap-check`.
fn imap_check(state: &AppState) -> anyhow::Result<()> {
    use crate::mail::inbound::imap;
    let cfg = state.config.mail.imap.as_ref().context("no IMAP mailbox configured (set imap_host)")?;
    let check = imap_runtime()?.block_on(imap::check(state)).map_err(|e| anyhow::anyhow!("{}", e.describe(cfg)))?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("mailbox\t{}", cfg.account());
    println!("messages\t{}", check.messages);
    println!("uidvalidity\t{}", check.uid_validity.map(|v| v.to_string()).unwrap_or_else(|| "-".into()));
    println!("uidnext\t{}", check.uid_next.map(|v| v.to_string()).unwrap_or_else(|| "-".into()));
    println!("idle\t{}", yes(check.caps.idle));
    println!("move\t{}", yes(check.caps.moves));
    println!("uidplus\t{}", yes(check.caps.uidplus));
    println!(
        "processed_folder\t{} ({})",
        cfg.processed_folder,
        if check.processed_folder_exists { "exists" } else { "created on first read" }
    );
    if let Some(row) = &check.state {
        println!(
            "last_uid\t{} (uidvalidity {})",
            row.last_uid,
            row.uid_validity.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
        );
        if let (Some(owner), Some(until)) = (&row.lease_owner, row.lease_until) {
            println!("read_by\t{owner} until {}", crate::fmt::LocalTime(until));
        }
        if let Some(e) = &row.last_error {
            println!("last_error\t{e}");
        }
    }
    Ok(())
}

/// `hubgate mail imap-fetch`: exit 1 if any message could not be processed.
fn imap_fetch(state: &AppState, format: &str) -> anyhow::Result<()> {
    use crate::mail::inbound::imap;
    let cfg = state.config.mail.imap.as_ref().context("no IMAP mailbox configured (set imap_host)")?;
    let fetched = imap_runtime()?
        .block_on(imap::fetch_once(state, &imap::Options::standard()))
        .map_err(|e| anyhow::anyhow!("{}", e.describe(cfg)))?;
    let failures = fetched.reports.iter().filter(|r| !print_report(r, r.file.as_deref().unwrap_or(""), format)).count();
    if let Some(why) = &fetched.not_moved {
        anyhow::bail!("stored, but left in {}: {why}", cfg.mailbox);
    }
    anyhow::ensure!(failures == 0, "{failures} message(s) could not be processed (kept raw; see /mail/unreadable)");
    Ok(())
}

/// `hubgate worker`: the worker and the scheduler until SIGTERM or ctrl-c.
fn run_worker(state: AppState) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let tasks = crate::app::start_background(&state, stop_rx);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: no new jobs, running ones get the grace period");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}

fn seed_demo(state: &AppState) -> anyhow::Result<String> {
    let mut conn = state.pool.get()?;
    crate::demo::seed(&mut conn, &state.config).map_err(|e| anyhow::anyhow!("demo data: {e}: {e:?}"))
}
