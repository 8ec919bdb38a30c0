//! The web app: state, middleware stack, routes of every domain, and the server.
//!
//! Request path: logger → metrics → signed-cookie session → user + CSRF
//! ([`session::middleware`]) → the route's role guard ([`access`]) → handler → one
//! domain service call on the blocking pool → template or redirect.

pub mod access;
pub mod assets;
pub mod export;
pub mod inline;
pub mod layout;
pub mod once;
pub mod pages;
pub mod session;
pub mod upload;

use std::sync::Arc;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::body::MessageBody;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Logger, from_fn};
use actix_web::{App, HttpServer, web};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};

use crate::config::Config;
use crate::db::Pool;
use crate::error::AppError;
use crate::services::Services;

/// Every page's policy: only our own scripts run; a partner mail's remote images
/// (tracking pixels) are not fetched until the reader asks; no frames, except on a
/// page that previews a PDF. Inline styles stay: sanitised mail HTML uses them.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; object-src 'none'; frame-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Shared by every handler: the domain services (which it derefs to, so a handler
/// passes `&state` where a service asks for `&Services`) and what only the web needs.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub oidc: Arc<crate::accounts::oidc::OidcClients>,
    /// The public API's per-key rate limit.
    pub api_limiter: Arc<crate::api::Limiter>,
    /// What sessions expire by (the system clock; tests move it forward).
    pub session_clock: session::SessionClock,
    /// The signed-in users' rows, so that a request does not reload its user.
    pub users: Arc<session::UserCache>,
    /// Partners' briefs and thresholds, so that a desk page does not read them anew.
    pub reference: Arc<crate::services::RowCache<crate::hub::Reference>>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    pub fn new(config: Config, pool: Pool) -> anyhow::Result<Self> {
        let oidc = Arc::new(crate::accounts::oidc::OidcClients::new()?);
        let api_limiter = Arc::new(crate::api::new_limiter(config.api_rate_per_second));
        let services = Services::new(config, pool)?;
        let reference = Arc::new(crate::hub::Reference::cache(services.versions.clone()));
        Ok(Self {
            services,
            oidc,
            api_limiter,
            session_clock: Default::default(),
            users: Default::default(),
            reference,
        })
    }
}

/// The domains whose `routes!` make the app, in registration order (that order matters
/// only within a first path segment: `/mail/sent` before the inbox's `/mail/{id}`). One
/// list gives both the router and [`all_routes`], so no route escapes the role matrix.
macro_rules! domains {
    ($($($seg:ident)::+),* $(,)?) => {
        /// Every declared route of the app, for the role matrix.
        pub fn all_routes() -> Vec<access::RouteSpec> {
            [$($($seg)::+::ROUTES),*].concat()
        }

        fn configure_routes(cfg: &mut web::ServiceConfig) {
            let mut routes = access::Routes::default();
            $($($seg)::+::configure(&mut routes);)*
            routes.register(cfg);
        }
    };
}

domains!(
    pages,
    crate::accounts::handlers,
    crate::accounts::portal,
    crate::business::handlers,
    crate::business::staff,
    crate::banking::handlers,
    crate::banking::statement::handlers,
    crate::notify::handlers,
    crate::api,
    crate::api::pages,
    crate::api::oauth_pages,
    crate::audit::handlers,
    crate::mail::sent,
    crate::mail::inbound::handlers,
    crate::hub::handlers,
    crate::hub::admin,
    crate::pyc::handlers,
    crate::reports::handlers,
    crate::worker::handlers,
);

/// `/metrics` answers only a scraper presenting `Authorization: Bearer <metrics_token>`;
/// without a configured token it does not exist (404). Route names, request counts and
/// pool sizes tell an outsider more than they should.
async fn metrics_guard(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if req.path() == "/metrics" {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let expected = state.map(|s| s.config.metrics_token.clone()).unwrap_or_default();
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim()
            .to_string();
        if expected.is_empty() {
            return Ok(req.into_response(actix_web::HttpResponse::NotFound().finish()));
        }
        if !session::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            let resp = actix_web::HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer realm=\"metrics\""))
                .finish();
            return Ok(req.into_response(resp));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Prometheus metrics: request counts and latencies by route, and pool usage.
pub fn metrics(pool: &Pool) -> anyhow::Result<PrometheusMetrics> {
    let metrics = PrometheusMetricsBuilder::new("hubgate")
        .endpoint("/metrics")
        .build()
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    let size = prometheus::IntGauge::new("hubgate_db_pool_connections", "open database connections")?;
    let idle = prometheus::IntGauge::new("hubgate_db_pool_idle", "idle database connections")?;
    let max = prometheus::IntGauge::new("hubgate_db_pool_max", "maximum database connections")?;
    metrics.registry.register(Box::new(size.clone()))?;
    metrics.registry.register(Box::new(idle.clone()))?;
    metrics.registry.register(Box::new(max.clone()))?;
    max.set(i64::from(pool.max_size()));
    // Sampled rather than updated per checkout: r2d2 has no hooks for that.
    let pool = pool.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            let state = pool.state();
            size.set(i64::from(state.connections));
            idle.set(i64::from(state.idle_connections));
        }
    });
    Ok(metrics)
}

/// A form or query string that does not read as its handler expects (forged, or an
/// old link): said in Vietnamese, with the field when serde names it. serde's English
/// detail goes to the log only.
fn unreadable(what: &str, err: &dyn std::fmt::Display) -> AppError {
    let detail = err.to_string();
    tracing::debug!(error = %detail, "{what}");
    let field = |marker: &str| {
        let rest = detail.split(marker).nth(1)?;
        let name = rest.split('`').nth(1)?;
        Some(name.chars().take(40).collect::<String>())
    };
    let why = if let Some(f) = field("duplicate field") {
        format!("“{f}” có nhiều giá trị")
    } else if let Some(f) = field("missing field") {
        format!("thiếu “{f}”")
    } else {
        "một giá trị không đúng dạng".to_string()
    };
    AppError::Validation(format!("{what}: {why}."))
}

/// The whole app, used by the server and by the tests.
pub fn build_app(
    state: AppState,
    metrics: PrometheusMetrics,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let key = Key::from(&state.config.secret.cookie_key());
    let session = SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name("hubgate_session".into())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(state.config.https())
        .cookie_content_security(CookieContentSecurity::Signed)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(actix_web::cookie::time::Duration::seconds(state.config.session_ttl.as_secs() as i64)),
        )
        .build();
    let static_dir = state.config.static_dir.clone();
    // Raw mail arrives as a request body: allow a message of the configured size.
    let body_limit = state.config.mail.max_message_bytes + 1024 * 1024;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(
            web::FormConfig::default().error_handler(|err, _req| unreadable("Biểu mẫu không hợp lệ", &err).into()),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|err, _req| unreadable("Tham số không hợp lệ", &err).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_err, _req| AppError::NotFound.into()))
        .configure(|cfg| assets::configure(cfg, static_dir.as_deref()))
        .configure(configure_routes)
        .default_service(web::to(pages::not_found))
        .wrap(from_fn(session::middleware))
        .wrap(session)
        .wrap(
            DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "same-origin"))
                // A page that sets its own policy (a mail shown with its images) keeps it.
                .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY)),
        )
        .wrap(metrics)
        .wrap(from_fn(metrics_guard))
        .wrap(
            Logger::new("%{request}xi %s %b %Dms")
                .custom_request_replace("request", |req| {
                    log_line(req.method().as_str(), req.path(), req.query_string())
                })
                .exclude("/healthz")
                .exclude("/metrics"),
        )
}

/// Query parameters whose values are secrets (mailed-link tokens, OpenID codes and
/// states, CSRF tokens): the access log keeps their names, never their values.
const SECRET_PARAMS: &[&str] = &["token", "code", "state", "_csrf", "nonce"];

/// The request as the access log shows it: method, path, query with secrets masked.
pub fn log_line(method: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        return format!("{method} {path}");
    }
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k) => format!("{k}=…"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{method} {path}?{}", masked.join("&"))
}

/// Listening sockets handed over by a service manager: systemd's socket activation
/// (a `.socket` unit; `LISTEN_FDS` sockets from fd 3 on, for this process when
/// `LISTEN_PID` names it or is unset). With any, `serve` listens on them and binds
/// nothing itself (`bind` is not used); without, it binds `bind` as always.
pub struct HandedOver(listenfd::ListenFd);

impl HandedOver {
    /// Reads (and clears) `LISTEN_FDS`/`LISTEN_PID`. Call it before any thread starts:
    /// it changes the environment.
    pub fn from_env() -> HandedOver {
        HandedOver(listenfd::ListenFd::from_env())
    }

    /// No sockets: `serve` binds `bind`.
    pub fn none() -> HandedOver {
        HandedOver(listenfd::ListenFd::empty())
    }

    /// The sockets as TCP listeners; one that is not a listening TCP socket stops the
    /// start (a unit that hands over something else is a mistake worth saying).
    fn take(mut self) -> anyhow::Result<Vec<std::net::TcpListener>> {
        let mut listeners = Vec::new();
        for i in 0..self.0.len() {
            match self.0.take_tcp_listener(i) {
                Ok(Some(l)) => listeners.push(l),
                Ok(None) => {}
                Err(e) => anyhow::bail!("handed-over socket {} (LISTEN_FDS): {e}", i + 3),
            }
        }
        Ok(listeners)
    }
}

/// Runs the web server (and, unless disabled, the worker and the scheduler) until
/// SIGTERM or ctrl-c; then drains requests and lets running jobs finish. It listens on
/// the `sockets` handed over, or else binds `bind`.
pub async fn serve(state: AppState, sockets: HandedOver) -> anyhow::Result<()> {
    let metrics = metrics(&state.pool)?;
    let listeners = sockets.take()?;
    let workers = state.config.http_workers;
    let app_state = state.clone();
    let mut server = HttpServer::new(move || build_app(app_state.clone(), metrics.clone())).shutdown_timeout(30);
    if listeners.is_empty() {
        server = server.bind(state.config.bind)?;
    }
    for listener in listeners {
        server = server.listen(listener)?;
    }
    let addrs: Vec<String> = server.addrs().iter().map(ToString::to_string).collect();
    if workers > 0 {
        server = server.workers(workers);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = crate::app::start_background(&state, stop_rx);
    tracing::info!(listen = %addrs.join(", "), base_url = %state.config.base_url, "hubgate is listening");
    server.run().await?;
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    tracing::info!("hubgate stopped");
    Ok(())
}
