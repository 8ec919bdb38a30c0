//! Configuration: built-in defaults, then an optional `hubgate.toml`, then environment
//! variables, in that order of precedence.
//!
//! Every setting is declared once in [`SETTINGS`]. A key that is not declared there
//! (a typo in the TOML file or an unknown `HUBGATE_*` variable) and a value that does
//! not parse both stop the program at start with a message naming the setting, so a
//! misconfigured node never runs half-configured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// One configurable value: its TOML key, its environment variable and its default.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// The declared settings; README's configuration table mirrors this list.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "bind",
        env: "HUBGATE_BIND",
        default: "127.0.0.1:8080",
        doc: "address the web server listens on (unused when systemd hands over a socket: LISTEN_FDS)",
    },
    Setting {
        key: "database_url",
        env: "DATABASE_URL",
        default: "sqlite://data/hubgate.db",
        doc: "sqlite://PATH (embedded) or postgres://USER:PASS@HOST/DB",
    },
    Setting {
        key: "data_dir",
        env: "HUBGATE_DATA_DIR",
        default: "data",
        doc: "directory for the secret key, the SQLite file and outgoing .eml files",
    },
    Setting {
        key: "secret_key",
        env: "HUBGATE_SECRET_KEY",
        default: "",
        doc: "64+ hex chars; signs cookies and encrypts secrets (generated into DATA_DIR/secret.key when empty)",
    },
    Setting {
        key: "old_secret_keys",
        env: "HUBGATE_OLD_SECRET_KEYS",
        default: "",
        doc: "comma-separated previous secret keys: stored secrets sealed under them still open until `hubgate rotate-key` re-seals them",
    },
    Setting {
        key: "base_url",
        env: "HUBGATE_BASE_URL",
        default: "http://127.0.0.1:8080",
        doc: "public URL of the app (https:// makes session cookies Secure)",
    },
    Setting {
        key: "log",
        env: "HUBGATE_LOG",
        default: "info",
        doc: "log filter (tracing EnvFilter syntax, e.g. info,hubgate=debug)",
    },
    Setting { key: "session_hours", env: "HUBGATE_SESSION_HOURS", default: "12", doc: "hours a login stays valid" },
    Setting {
        key: "db_pool_size",
        env: "HUBGATE_DB_POOL_SIZE",
        default: "10",
        doc: "database connections per process",
    },
    Setting {
        key: "http_workers",
        env: "HUBGATE_HTTP_WORKERS",
        default: "0",
        doc: "HTTP worker threads (0 = one per CPU)",
    },
    Setting {
        key: "static_dir",
        env: "HUBGATE_STATIC_DIR",
        default: "",
        doc: "directory served at /static, uncached, for editing the stylesheet (empty = the files built into the binary)",
    },
    Setting {
        key: "mail_own_domains",
        env: "HUBGATE_MAIL_OWN_DOMAINS",
        default: "ipos.vn",
        doc: "comma-separated domains of our own staff (their mail is never a partner's or merchant's)",
    },
    Setting {
        key: "mail_max_message_mb",
        env: "HUBGATE_MAIL_MAX_MESSAGE_MB",
        default: "25",
        doc: "inbound messages above this size are kept raw but not processed",
    },
    Setting {
        key: "mail_max_attachment_mb",
        env: "HUBGATE_MAIL_MAX_ATTACHMENT_MB",
        default: "15",
        doc: "attachments above this size are listed but their content is not stored separately",
    },
    Setting {
        key: "inbound_token",
        env: "HUBGATE_INBOUND_TOKEN",
        default: "",
        doc: "bearer token for POST /inbound/mail (empty = endpoint refuses everything)",
    },
    Setting {
        key: "maildir",
        env: "HUBGATE_MAILDIR",
        default: "",
        doc: "Maildir folder watched for new partner mail (empty = not watched)",
    },
    Setting {
        key: "maildir_interval_secs",
        env: "HUBGATE_MAILDIR_INTERVAL_SECS",
        default: "30",
        doc: "how often the Maildir is scanned",
    },
    Setting {
        key: "imap_host",
        env: "HUBGATE_IMAP_HOST",
        default: "",
        doc: "IMAP server of the shared partner mailbox, e.g. imap.gmail.com (empty = not read)",
    },
    Setting {
        key: "imap_port",
        env: "HUBGATE_IMAP_PORT",
        default: "",
        doc: "IMAP port (empty = 993 with tls, 143 with starttls or plain)",
    },
    Setting {
        key: "imap_tls",
        env: "HUBGATE_IMAP_TLS",
        default: "tls",
        doc: "tls (implicit TLS), starttls, or plain (only to a loopback address, for tests)",
    },
    Setting { key: "imap_user", env: "HUBGATE_IMAP_USER", default: "", doc: "IMAP login name" },
    Setting {
        key: "imap_password",
        env: "HUBGATE_IMAP_PASSWORD",
        default: "",
        doc: "IMAP password (Gmail, Microsoft 365: an app password); never logged",
    },
    Setting {
        key: "imap_mailbox",
        env: "HUBGATE_IMAP_MAILBOX",
        default: "INBOX",
        doc: "mailbox read for partner mail",
    },
    Setting {
        key: "imap_processed_folder",
        env: "HUBGATE_IMAP_PROCESSED_FOLDER",
        default: "hubgate/processed",
        doc: "folder stored mail is moved to (created if missing)",
    },
    Setting {
        key: "imap_interval_secs",
        env: "HUBGATE_IMAP_INTERVAL_SECS",
        default: "60",
        doc: "how often the mailbox is checked when the server has no IDLE",
    },
    Setting {
        key: "imap_ca_file",
        env: "HUBGATE_IMAP_CA_FILE",
        default: "",
        doc: "PEM file of extra CA certificates to trust (a server with a self-signed certificate)",
    },
    Setting {
        key: "worker_concurrency",
        env: "HUBGATE_WORKER_CONCURRENCY",
        default: "4",
        doc: "jobs run at once by the worker embedded in `serve` (0 = no embedded worker)",
    },
    Setting {
        key: "worker_lease_secs",
        env: "HUBGATE_WORKER_LEASE_SECS",
        default: "300",
        doc: "how long a claimed job is reserved; a crashed worker's jobs run again after it",
    },
    Setting {
        key: "worker_poll_ms",
        env: "HUBGATE_WORKER_POLL_MS",
        default: "500",
        doc: "how often an idle worker looks for due jobs",
    },
    Setting {
        key: "worker_job_timeout_secs",
        env: "HUBGATE_WORKER_JOB_TIMEOUT_SECS",
        default: "120",
        doc: "a job running longer fails and is retried",
    },
    Setting {
        key: "worker_grace_secs",
        env: "HUBGATE_WORKER_GRACE_SECS",
        default: "20",
        doc: "on shutdown, running jobs get this long to finish before their leases are released",
    },
    Setting {
        key: "smtp_url",
        env: "HUBGATE_SMTP_URL",
        default: "",
        doc: "smtp://user:pass@host:587?tls=required (STARTTLS), smtps://… (TLS), smtp://host:25 (plain); empty = .eml files in DATA_DIR/outbox",
    },
    Setting {
        key: "mail_from",
        env: "HUBGATE_MAIL_FROM",
        default: "hub@ipos.vn",
        doc: "sender address of outgoing mail",
    },
    Setting {
        key: "mail_from_name",
        env: "HUBGATE_MAIL_FROM_NAME",
        default: "iPOS Hub",
        doc: "sender name of outgoing mail",
    },
    Setting {
        key: "message_id_domain",
        env: "HUBGATE_MESSAGE_ID_DOMAIN",
        default: "",
        doc: "domain of our Message-IDs (empty = the sender address's domain)",
    },
    Setting {
        key: "oidc_google_issuer",
        env: "HUBGATE_OIDC_GOOGLE_ISSUER",
        default: "",
        doc: "OpenID issuer URL for \"Đăng nhập bằng Google\" (empty = no button)",
    },
    Setting {
        key: "oidc_google_client_id",
        env: "HUBGATE_OIDC_GOOGLE_CLIENT_ID",
        default: "",
        doc: "client id registered at Google (redirect URL: BASE_URL/auth/google/callback)",
    },
    Setting {
        key: "oidc_google_client_secret",
        env: "HUBGATE_OIDC_GOOGLE_CLIENT_SECRET",
        default: "",
        doc: "client secret registered at Google",
    },
    Setting {
        key: "oidc_microsoft_issuer",
        env: "HUBGATE_OIDC_MICROSOFT_ISSUER",
        default: "",
        doc: "OpenID issuer URL for \"Đăng nhập bằng Microsoft\" (empty = no button)",
    },
    Setting {
        key: "oidc_microsoft_client_id",
        env: "HUBGATE_OIDC_MICROSOFT_CLIENT_ID",
        default: "",
        doc: "client id registered at Microsoft (redirect URL: BASE_URL/auth/microsoft/callback)",
    },
    Setting {
        key: "oidc_microsoft_client_secret",
        env: "HUBGATE_OIDC_MICROSOFT_CLIENT_SECRET",
        default: "",
        doc: "client secret registered at Microsoft",
    },
    Setting {
        key: "bank_api_urls",
        env: "HUBGATE_BANK_API_URLS",
        default: "",
        doc: "official Open API base URL per bank code, e.g. OCB=https://api.bank.example/openapi,MB=https://…",
    },
    Setting {
        key: "rpa_agent_url",
        env: "HUBGATE_RPA_AGENT_URL",
        default: "",
        doc: "base URL of the RPA agent service that logs in to banks without an API (empty = method off)",
    },
    Setting {
        key: "rpa_agent_token",
        env: "HUBGATE_RPA_AGENT_TOKEN",
        default: "",
        doc: "bearer token hubgate presents to the RPA agent",
    },
    Setting {
        key: "metrics_token",
        env: "HUBGATE_METRICS_TOKEN",
        default: "",
        doc: "bearer token a Prometheus scraper presents at /metrics (empty = /metrics is off)",
    },
    Setting {
        key: "trusted_proxies",
        env: "HUBGATE_TRUSTED_PROXIES",
        default: "",
        doc: "comma-separated addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed",
    },
    Setting {
        key: "upload_max_files",
        env: "HUBGATE_UPLOAD_MAX_FILES",
        default: "50",
        doc: "files one upload form may send at once; more is refused whole (413)",
    },
    Setting {
        key: "upload_max_mb",
        env: "HUBGATE_UPLOAD_MAX_MB",
        default: "50",
        doc: "total size of one upload (all its files); more is refused whole (413)",
    },
    Setting {
        key: "api_rate_per_second",
        env: "HUBGATE_API_RATE_PER_SECOND",
        default: "20",
        doc: "requests per second each API key may make (twice that in a burst); beyond it 429",
    },
    Setting {
        key: "zalo_app_id",
        env: "HUBGATE_ZALO_APP_ID",
        default: "",
        doc: "Zalo app id (login with Zalo, OA token refresh); empty = Zalo OA integration off",
    },
    Setting {
        key: "zalo_app_secret",
        env: "HUBGATE_ZALO_APP_SECRET",
        default: "",
        doc: "Zalo app secret key (sent as the secret_key header to Zalo's OAuth server)",
    },
    Setting {
        key: "zalo_oa_secret",
        env: "HUBGATE_ZALO_OA_SECRET",
        default: "",
        doc: "OA secret key that signs the OA webhook's events (X-ZEvent-Signature)",
    },
    Setting {
        key: "zalo_refresh_token",
        env: "HUBGATE_ZALO_REFRESH_TOKEN",
        default: "",
        doc: "the OA's first refresh token; later ones rotate and live in the database",
    },
    Setting {
        key: "zalo_oauth_url",
        env: "HUBGATE_ZALO_OAUTH_URL",
        default: "https://oauth.zaloapp.com",
        doc: "Zalo OAuth server (login, OA access tokens)",
    },
    Setting {
        key: "zalo_openapi_url",
        env: "HUBGATE_ZALO_OPENAPI_URL",
        default: "https://openapi.zalo.me",
        doc: "Zalo OA OpenAPI (sending messages)",
    },
    Setting {
        key: "zalo_graph_url",
        env: "HUBGATE_ZALO_GRAPH_URL",
        default: "https://graph.zalo.me",
        doc: "Zalo Graph API (the logged-in user's id and name)",
    },
    Setting {
        key: "telegram_api_url",
        env: "HUBGATE_TELEGRAM_API_URL",
        default: "https://api.telegram.org",
        doc: "Telegram Bot API base URL (bot<token>/sendMessage is appended)",
    },
    Setting {
        key: "webhook_allow_private",
        env: "HUBGATE_WEBHOOK_ALLOW_PRIVATE",
        default: "false",
        doc: "let webhooks call private and loopback addresses (tests, closed networks); off by default",
    },
];

/// Environment variables with our prefix that are not settings of the app itself: the
/// config file's path, the browser tests' programs, and the test harness's
/// `HUBGATE_TEST_*` (a test's environment reaches the binaries it starts).
const NOT_SETTINGS: &[&str] = &["HUBGATE_CONFIG", "HUBGATE_CHROMIUM", "HUBGATE_CHROMEDRIVER"];

/// hubgate's Zalo app and Official Account.
#[derive(Clone, Debug, Default)]
pub struct ZaloConfig {
    pub app_id: String,
    pub app_secret: String,
    pub oa_secret: String,
    pub refresh_token: String,
    pub oauth_url: String,
    pub openapi_url: String,
    pub graph_url: String,
}

impl ZaloConfig {
    /// The Zalo OA integration shows only when the app is configured.
    pub fn enabled(&self) -> bool {
        !self.app_id.is_empty() && !self.app_secret.is_empty()
    }
}

/// The typed configuration passed to every part of the app (no globals).
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub secret: SecretKey,
    /// Previous secret keys: they only open stored secrets (see `crate::secrets`).
    pub old_secrets: Vec<SecretKey>,
    pub base_url: String,
    pub log: String,
    pub session_ttl: Duration,
    pub db_pool_size: u32,
    pub http_workers: usize,
    /// Development override of the embedded static files.
    pub static_dir: Option<PathBuf>,
    pub mail: MailConfig,
    pub worker: WorkerConfig,
    pub outbound: OutboundConfig,
    /// Configured OpenID providers, in the order their buttons appear.
    pub oidc: Vec<OidcProvider>,
    pub banking: BankingConfig,
    /// Webhooks may call private and loopback addresses.
    pub webhook_allow_private: bool,
    pub zalo: ZaloConfig,
    pub telegram_api_url: String,
    pub api_rate_per_second: u32,
    /// Bounds of one browser upload (mail, screenshots, statements).
    pub upload: crate::web::upload::UploadLimits,
    pub metrics_token: String,
    /// Reverse proxies in front of the app; only their X-Forwarded-For names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Where the bank-side parties are.
#[derive(Clone, Debug, Default)]
pub struct BankingConfig {
    /// Official Open API base URL by bank code (OCB, MB, …).
    pub api_urls: BTreeMap<String, String>,
    pub rpa_url: Option<String>,
    pub rpa_token: String,
}

/// An OpenID Connect provider merchants may sign in with.
#[derive(Clone, Debug)]
pub struct OidcProvider {
    /// `google` or `microsoft`: the path segment of /auth/{key}.
    pub key: &'static str,
    pub label: &'static str,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The worker's settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub poll: Duration,
    pub job_timeout: Duration,
    pub grace: Duration,
}

/// Outgoing mail settings.
#[derive(Clone, Debug)]
pub struct OutboundConfig {
    pub smtp_url: Option<String>,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub from_name: String,
    pub message_id_domain: String,
}

/// Inbound mail settings.
#[derive(Clone, Debug)]
pub struct MailConfig {
    pub own_domains: Vec<String>,
    pub max_message_bytes: usize,
    pub max_attachment_bytes: usize,
    pub inbound_token: String,
    pub maildir: Option<PathBuf>,
    pub maildir_interval: Duration,
    pub imap: Option<ImapConfig>,
}

/// How the IMAP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain greeting, then STARTTLS before the login (port 143).
    StartTls,
    /// No TLS at all: only to a loopback address (a test server).
    Plain,
}

/// The shared partner mailbox read over IMAP.
#[derive(Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    pub user: String,
    pub password: String,
    pub mailbox: String,
    pub processed_folder: String,
    pub interval: Duration,
    pub ca_file: Option<PathBuf>,
}

// By hand, so that no `{:?}` of the configuration ever prints the password.
impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"…")
            .field("mailbox", &self.mailbox)
            .field("processed_folder", &self.processed_folder)
            .field("interval", &self.interval)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl ImapConfig {
    /// The key of this mailbox's reading state: another server, account or mailbox
    /// starts afresh (already stored mail is then recognised as a duplicate).
    pub fn account(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host.to_lowercase(), self.port, self.mailbox)
    }
}

/// The master secret. Sub-keys for separate purposes are derived from it, so a
/// cookie key can never be used to decrypt a stored secret.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// 32 bytes derived for `purpose` (HMAC-SHA256 of the purpose under the master key).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The 64-byte key actix uses to sign session cookies.
    pub fn cookie_key(&self) -> [u8; 64] {
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&self.derive("cookie-signing-1"));
        key[32..].copy_from_slice(&self.derive("cookie-signing-2"));
        key
    }
}

impl Config {
    /// Loads the configuration from the process environment and the optional TOML file
    /// (`HUBGATE_CONFIG`, or `hubgate.toml` in the working directory when it exists).
    pub fn load() -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = std::env::var("HUBGATE_CONFIG").ok().map(PathBuf::from).or_else(|| {
            let p = PathBuf::from("hubgate.toml");
            p.exists().then_some(p)
        });
        let toml_text = match &file {
            Some(p) => {
                Some(std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?)
            }
            None => None,
        };
        Self::from_sources(toml_text.as_deref(), &env)
    }

    /// Builds the configuration from a TOML text and a list of environment variables.
    pub fn from_sources(toml_text: Option<&str>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut raw: BTreeMap<&'static str, String> = SETTINGS.iter().map(|s| (s.key, s.default.to_string())).collect();
        if let Some(text) = toml_text {
            let table: toml::Table = text.parse().context("hubgate.toml is not valid TOML")?;
            for (key, value) in table {
                let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
                    bail!("unknown setting `{key}` in hubgate.toml");
                };
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        bail!("setting `{key}` in hubgate.toml must be a string or a number, not {}", other.type_str())
                    }
                };
                raw.insert(setting.key, value);
            }
        }
        for (name, value) in env {
            if let Some(setting) = SETTINGS.iter().find(|s| s.env == name) {
                raw.insert(setting.key, value.clone());
            } else if name.starts_with("HUBGATE_")
                && !name.starts_with("HUBGATE_TEST_")
                && !NOT_SETTINGS.contains(&name.as_str())
            {
                bail!("unknown setting {name} in the environment");
            }
        }
        let get = |key: &str| raw.get(key).cloned().unwrap_or_default();
        let describe = |key: &str| {
            SETTINGS
                .iter()
                .find(|s| s.key == key)
                .map(|s| format!("{} ({})", s.env, s.key))
                .unwrap_or_else(|| key.to_string())
        };
        let parse_num = |key: &str| -> anyhow::Result<u64> {
            get(key)
                .trim()
                .parse::<u64>()
                .with_context(|| format!("{} must be a whole number, got `{}`", describe(key), get(key)))
        };

        let bind: SocketAddr = get("bind")
            .parse()
            .with_context(|| format!("{} must be HOST:PORT, got `{}`", describe("bind"), get("bind")))?;
        let database_url = get("database_url");
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("{} must start with sqlite:// or postgres://, got `{database_url}`", describe("database_url"));
        }
        let data_dir = PathBuf::from(get("data_dir"));
        let base_url = get("base_url").trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            bail!("{} must start with http:// or https://, got `{base_url}`", describe("base_url"));
        }
        let log = get("log");
        tracing_subscriber::EnvFilter::try_new(&log)
            .with_context(|| format!("{} is not a valid log filter: `{log}`", describe("log")))?;
        let session_hours = parse_num("session_hours")?;
        if session_hours == 0 {
            bail!("{} must be at least 1", describe("session_hours"));
        }
        let db_pool_size = u32::try_from(parse_num("db_pool_size")?)
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{} must be between 1 and 4294967295", describe("db_pool_size")))?;
        let http_workers = usize::try_from(parse_num("http_workers")?)
            .with_context(|| format!("{} is too large", describe("http_workers")))?;
        let static_dir = Some(get("static_dir")).filter(|s| !s.is_empty()).map(PathBuf::from);
        let secret_hex = get("secret_key");
        let secret = if secret_hex.is_empty() {
            None
        } else {
            let bytes = hex::decode(secret_hex.trim())
                .ok()
                .filter(|b| b.len() >= 32)
                .with_context(|| format!("{} must be at least 64 hex characters", describe("secret_key")))?;
            Some(SecretKey(bytes))
        };
        let secret = match secret {
            Some(s) => s,
            None => load_or_create_secret(&data_dir)?,
        };
        let old_secrets = get("old_secret_keys")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, k)| {
                hex::decode(k).ok().filter(|b| b.len() >= 32).map(SecretKey).with_context(|| {
                    format!("{}: key {} must be at least 64 hex characters", describe("old_secret_keys"), i + 1)
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mb = |key: &str| -> anyhow::Result<usize> {
            let n = parse_num(key)?;
            anyhow::ensure!(n > 0, "{} must be at least 1", describe(key));
            Ok(usize::try_from(n.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX))
        };
        let mail = MailConfig {
            own_domains: get("mail_own_domains")
                .split(',')
                .map(|d| d.trim().to_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            max_message_bytes: mb("mail_max_message_mb")?,
            max_attachment_bytes: mb("mail_max_attachment_mb")?,
            inbound_token: get("inbound_token"),
            maildir: Some(get("maildir")).filter(|s| !s.is_empty()).map(PathBuf::from),
            maildir_interval: Duration::from_secs(parse_num("maildir_interval_secs")?.max(1)),
            imap: imap_config(&get, &describe, &parse_num)?,
        };
        let worker = WorkerConfig {
            concurrency: usize::try_from(parse_num("worker_concurrency")?).unwrap_or(usize::MAX),
            lease: Duration::from_secs(parse_num("worker_lease_secs")?.max(1)),
            poll: Duration::from_millis(parse_num("worker_poll_ms")?.max(10)),
            job_timeout: Duration::from_secs(parse_num("worker_job_timeout_secs")?.max(1)),
            grace: Duration::from_secs(parse_num("worker_grace_secs")?),
        };
        let smtp_url = Some(get("smtp_url")).filter(|s| !s.trim().is_empty());
        if let Some(u) = &smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            bail!("{} must start with smtp:// or smtps://", describe("smtp_url"));
        }
        let from = get("mail_from").trim().to_string();
        if !from.contains('@') {
            bail!("{} must be an e-mail address, got `{from}`", describe("mail_from"));
        }
        let message_id_domain = match get("message_id_domain").trim() {
            "" => from.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default(),
            d => d.to_string(),
        };
        let outbound = OutboundConfig {
            smtp_url,
            outbox_dir: data_dir.join("outbox"),
            from,
            from_name: get("mail_from_name"),
            message_id_domain,
        };
        let mut oidc = Vec::new();
        for (key, label) in [("google", "Google"), ("microsoft", "Microsoft")] {
            // Kept exactly as written: the discovered issuer must match it, trailing slash and all.
            let issuer = get(&format!("oidc_{key}_issuer")).trim().to_string();
            let client_id = get(&format!("oidc_{key}_client_id")).trim().to_string();
            let client_secret = get(&format!("oidc_{key}_client_secret")).trim().to_string();
            let set = [&issuer, &client_id, &client_secret].iter().filter(|v| !v.is_empty()).count();
            if set == 0 {
                continue;
            }
            if set < 3 {
                bail!(
                    "OpenID provider `{key}` needs all of oidc_{key}_issuer, oidc_{key}_client_id and oidc_{key}_client_secret"
                );
            }
            if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                bail!("{} must be an http(s) URL, got `{issuer}`", describe(&format!("oidc_{key}_issuer")));
            }
            oidc.push(OidcProvider { key, label, issuer, client_id, client_secret });
        }
        let mut api_urls = BTreeMap::new();
        for pair in get("bank_api_urls").split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (code, url) = pair
                .split_once('=')
                .with_context(|| format!("{} entries are CODE=URL, got `{pair}`", describe("bank_api_urls")))?;
            let url = url.trim().trim_end_matches('/');
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("{}: `{code}` needs an http(s) URL, got `{url}`", describe("bank_api_urls"));
            }
            api_urls.insert(code.trim().to_uppercase(), url.to_string());
        }
        let rpa_url = Some(get("rpa_agent_url").trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
        if let Some(u) = &rpa_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            bail!("{} must be an http(s) URL", describe("rpa_agent_url"));
        }
        let banking = BankingConfig { api_urls, rpa_url, rpa_token: get("rpa_agent_token") };
        let webhook_allow_private = match get("webhook_allow_private").trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            other => bail!("{} must be true or false, got `{other}`", describe("webhook_allow_private")),
        };
        let url = |key: &str| -> anyhow::Result<String> {
            let u = get(key).trim().trim_end_matches('/').to_string();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                bail!("{} must be an http(s) URL, got `{u}`", describe(key));
            }
            Ok(u)
        };
        let zalo = ZaloConfig {
            app_id: get("zalo_app_id").trim().to_string(),
            app_secret: get("zalo_app_secret").trim().to_string(),
            oa_secret: get("zalo_oa_secret").trim().to_string(),
            refresh_token: get("zalo_refresh_token").trim().to_string(),
            oauth_url: url("zalo_oauth_url")?,
            openapi_url: url("zalo_openapi_url")?,
            graph_url: url("zalo_graph_url")?,
        };
        let telegram_api_url = url("telegram_api_url")?;
        let api_rate_per_second = u32::try_from(parse_num("api_rate_per_second")?.max(1)).unwrap_or(u32::MAX);
        let upload = crate::web::upload::UploadLimits {
            max_files: usize::try_from(parse_num("upload_max_files")?.max(1)).unwrap_or(usize::MAX),
            max_bytes: mb("upload_max_mb")?,
        };
        Ok(Config {
            upload,
            zalo,
            telegram_api_url,
            api_rate_per_second,
            metrics_token: get("metrics_token").trim().to_string(),
            trusted_proxies: get("trusted_proxies")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .with_context(|| {
                            format!("{}: {s:?} is not an address or a network", describe("trusted_proxies"))
                        })
                })
                .collect::<anyhow::Result<_>>()?,
            webhook_allow_private,
            banking,
            oidc,
            worker,
            outbound,
            mail,
            bind,
            database_url,
            data_dir,
            secret,
            old_secrets,
            base_url,
            log,
            session_ttl: Duration::from_secs(session_hours * 3600),
            db_pool_size,
            http_workers,
            static_dir,
        })
    }

    /// The keys that seal (the current one) and open (all of them) stored secrets.
    pub fn keyring(&self) -> crate::secrets::Keyring {
        crate::secrets::Keyring::new(self.secret.clone(), self.old_secrets.clone())
    }

    /// Session cookies are marked Secure only when the app is served over HTTPS.
    pub fn https(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

/// The IMAP settings, or None when no host is set. A mailbox name that IMAP would
/// need to encode (modified UTF-7) or that holds LIST wildcards is refused here rather
/// than misread later.
fn imap_config(
    get: &dyn Fn(&str) -> String,
    describe: &dyn Fn(&str) -> String,
    parse_num: &dyn Fn(&str) -> anyhow::Result<u64>,
) -> anyhow::Result<Option<ImapConfig>> {
    let host = get("imap_host").trim().to_string();
    if host.is_empty() {
        return Ok(None);
    }
    let tls = match get("imap_tls").trim() {
        "tls" | "" => ImapTls::Tls,
        "starttls" => ImapTls::StartTls,
        "plain" => ImapTls::Plain,
        other => bail!("{} must be tls, starttls or plain, got `{other}`", describe("imap_tls")),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if tls == ImapTls::Plain && !loopback {
        bail!(
            "{} = plain sends the IMAP password in clear: allowed only to a loopback address, not `{host}`",
            describe("imap_tls")
        );
    }
    let port = match get("imap_port").trim() {
        "" if tls == ImapTls::Tls => 993,
        "" => 143,
        p => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("{} must be a port number, got `{p}`", describe("imap_port")))?,
    };
    let user = get("imap_user").trim().to_string();
    let password = get("imap_password");
    if user.is_empty() || password.is_empty() {
        bail!("{} needs {} and {}", describe("imap_host"), describe("imap_user"), describe("imap_password"));
    }
    let name = |key: &str| -> anyhow::Result<String> {
        let n = get(key).trim().to_string();
        let fine = |c: char| c.is_ascii_graphic() && !matches!(c, '*' | '%' | '"' | '\\') || c == ' ';
        if n.is_empty() || !n.chars().all(fine) {
            bail!("{} must be a non-empty ASCII mailbox name without * % \" or \\, got `{n}`", describe(key));
        }
        Ok(n)
    };
    let mailbox = name("imap_mailbox")?;
    let processed_folder = name("imap_processed_folder")?;
    if processed_folder.eq_ignore_ascii_case(&mailbox) {
        bail!("{} must differ from {}", describe("imap_processed_folder"), describe("imap_mailbox"));
    }
    let ca_file = Some(get("imap_ca_file").trim().to_string()).filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(path) = &ca_file
        && let Err(e) = read_ca_file(path)
    {
        bail!("{}: {e}", describe("imap_ca_file"));
    }
    Ok(Some(ImapConfig {
        host,
        port,
        tls,
        user,
        password,
        mailbox,
        processed_folder,
        interval: Duration::from_secs(parse_num("imap_interval_secs")?.max(1)),
        ca_file,
    }))
}

/// Reads `DATA_DIR/secret.key`, creating it with 64 random bytes on first start.
fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<SecretKey> {
    let path = data_dir.join("secret.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() >= 32)
            .with_context(|| format!("{} is corrupt (expected 64+ hex characters)", path.display()))?;
        return Ok(SecretKey(bytes));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let mut bytes = vec![0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    write_private(&path, &hex::encode(&bytes))?;
    tracing::info!(path = %path.display(), "generated a new secret key");
    Ok(SecretKey(bytes))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The certificates of a PEM file (the CA of a server with a self-signed certificate).
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let certs = <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}
