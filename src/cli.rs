//! The command line: `hubgate [serve] | migrate | create-user`.

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
#[command(
    name = "hubgate",
    version,
    about = "Hub connection desk and bank-sync notifications (web app, worker, CLI)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web app (the default when no command is given).
    Serve,
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
}

impl clap::builder::ValueParserFactory for Role {
    type Parser = clap::builder::ValueParser;
    fn value_parser() -> Self::Parser {
        clap::builder::ValueParser::new(|s: &str| s.parse::<Role>())
    }
}

/// Loads config, sets up logging and the database, and runs the command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load()?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log)?)
        .with_target(false)
        .init();
    let pool = crate::db::pool(&config.database_url, config.db_pool_size)?;
    {
        let mut conn = pool.get()?;
        for name in crate::db::migrate(&mut conn)? {
            tracing::info!(migration = %name, "applied migration");
        }
    }
    let state = AppState::new(config, pool);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::new().block_on(crate::web::serve(state)),
        Command::Migrate => {
            println!("database is up to date");
            Ok(())
        }
        Command::CreateUser { email, name, role } => {
            let password = read_password()?;
            let mut conn = state.pool.get()?;
            let input = UserInput {
                email,
                name,
                password,
                roles: role,
            };
            match service::create_user(&mut conn, &Actor::system("cli"), &input) {
                Ok(user) => {
                    println!(
                        "created user {} (id {}) with roles {}",
                        user.email,
                        user.id,
                        user.roles().stored()
                    );
                    Ok(())
                }
                Err(AppError::Validation(msg)) => anyhow::bail!("{msg}"),
                Err(e) => Err(anyhow::anyhow!("{e}: {:?}", e)),
            }
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Mật khẩu: ")?;
        let second = rpassword::prompt_password("Nhập lại mật khẩu: ")?;
        anyhow::ensure!(first == second, "passwords do not match");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}
