//! Route guards. Every route is declared with its access rule in a domain's
//! `routes!` block, which both registers it and lists it in that domain's `ROUTES`,
//! so the role-matrix test sees every route that exists.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, FromRequest, Handler, HttpMessage, HttpResponse, Responder, ResponseError, guard, web};

use super::session::CurrentUser;
use crate::accounts::Role;
use crate::error::AppError;

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anybody, signed in or not (login, setup, health).
    Public,
    /// Anybody signed in, staff or merchant (logout, own password).
    SignedIn,
    /// Any signed-in staff member (never a merchant account).
    Staff,
    /// Signed-in staff holding one of these roles (admin always passes).
    Roles(&'static [Role]),
    /// A signed-in merchant account (never staff); which businesses it reaches is
    /// checked by the business extractor.
    Merchant,
}

impl Access {
    pub fn allows(self, user: Option<&CurrentUser>) -> bool {
        match (self, user) {
            (Access::Public, _) => true,
            (_, None) => false,
            (Access::SignedIn, Some(_)) => true,
            (Access::Staff, Some(u)) => u.is_staff(),
            (Access::Roles(roles), Some(u)) => u.is_staff() && u.roles.allows(roles),
            (Access::Merchant, Some(u)) => u.is_merchant(),
        }
    }
}

/// What a route's body may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A urlencoded form (or none): the CSRF middleware checks its `_csrf` field, and
    /// refuses a multipart body outright.
    Form,
    /// A multipart upload: the middleware lets it through unread and the handler's
    /// [`super::upload::Upload`] extractor checks the `_csrf` first field, after the
    /// route's guard and before any file is read.
    Upload,
}

impl Body {
    /// `Form` unless the declaration named another (used by [`routes!`]).
    pub const fn declared(named: &[Body]) -> Body {
        if named.is_empty() { Body::Form } else { named[0] }
    }
}

/// One declared route, as the role matrix sees it.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub body: Body,
}

/// Declares a domain's routes: `METHOD "path" => access, handler;` per line, or
/// `POST "path" => access, handler, Upload;` for a multipart upload.
/// Expands to `pub const ROUTES` and `pub fn configure`.
#[macro_export]
macro_rules! routes {
    ($($method:ident $path:literal => $access:expr, $handler:path $(, $body:ident)?;)*) => {
        /// The routes of this domain with their access rules.
        pub const ROUTES: &[$crate::web::access::RouteSpec] = &[
            $($crate::web::access::RouteSpec {
                method: stringify!($method),
                path: $path,
                access: $access,
                body: $crate::web::access::Body::declared(&[$($crate::web::access::Body::$body)?]),
            },)*
        ];

        /// Adds this domain's routes, each behind its guard.
        pub fn configure(routes: &mut $crate::web::access::Routes) {
            $(routes.add(stringify!($method), $path, $access, $handler);)*
        }
    };
}

/// Every declared route's method, path pattern and access, for [`refused_everywhere`].
static DECLARED: std::sync::LazyLock<Vec<(Method, actix_web::dev::ResourceDef, Access)>> =
    std::sync::LazyLock::new(|| {
        super::all_routes()
            .iter()
            .filter_map(|r| {
                let m = Method::from_bytes(r.method.as_bytes()).ok()?;
                Some((m, actix_web::dev::ResourceDef::new(r.path), r.access))
            })
            .collect()
    });

/// Whether every declared route this request could be for refuses this person: then
/// the route's guard answers (303 to the login, or 403) without the body, and the
/// CSRF middleware need not read it either. A request no route matches, or that one
/// matching route allows, is checked as usual, so no form escapes its token check.
pub fn refused_everywhere(method: &Method, path: &str, user: Option<&CurrentUser>) -> bool {
    let mut matching = DECLARED.iter().filter(|(m, def, _)| m == method && def.is_match(path)).peekable();
    matching.peek().is_some() && matching.all(|(_, _, access)| !access.allows(user))
}

/// Registration of one route, deferred until every domain has declared its own.
type Register = Box<dyn FnOnce(&mut web::ServiceConfig)>;

/// Every declared route, grouped under its first path segment ("/requests", "/app",
/// …). actix tries an app's services one after another, and a pattern with `{…}` by
/// regex: registered flat, a page was matched against every such route declared
/// before it (`ResourceDef::capture_match_info_fn` was 4.6–5.6% of the list pages' and
/// the dashboard's samples under `perf`). A scope is matched by its static prefix, so
/// a request now meets only its own segment's routes. An unmatched path in a scope
/// gets the app's default service, as before.
#[derive(Default)]
pub struct Routes(Vec<(&'static str, Vec<Register>)>);

impl Routes {
    /// Adds one route behind its access guard. A resource guard on the method lets
    /// several declarations share a path (GET shows a form, POST handles it). Routes
    /// keep their declared order within their segment (`/mail/sent` before
    /// `/mail/{id}`).
    pub fn add<F, Args>(&mut self, method: &'static str, path: &'static str, access: Access, handler: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let (prefix, rest) = split_first_segment(path);
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let register: Register = Box::new(move |cfg| {
            cfg.service(
                web::resource(rest)
                    .guard(guard::Method(method.clone()))
                    .route(web::method(method).to(handler))
                    .wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| check(access, req, next))),
            );
        });
        match self.0.iter_mut().find(|(p, _)| *p == prefix) {
            Some((_, group)) => group.push(register),
            None => self.0.push((prefix, vec![register])),
        }
    }

    /// Registers every route: each segment's as one scope; `/` and patterns whose first
    /// segment is not a fixed word at the top.
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        for (prefix, group) in self.0 {
            if prefix.is_empty() {
                group.into_iter().for_each(|r| r(cfg));
            } else {
                cfg.service(web::scope(prefix).configure(|scope| group.into_iter().for_each(|r| r(scope))));
            }
        }
    }
}

/// "/requests/{id}/pyc" → ("/requests", "/{id}/pyc"); "/requests" → ("/requests", "");
/// "/" and a first segment with a pattern in it → ("", the whole path).
fn split_first_segment(path: &'static str) -> (&'static str, &'static str) {
    let end = path[1.min(path.len())..].find('/').map_or(path.len(), |i| i + 1);
    let (prefix, rest) = path.split_at(end);
    if prefix.len() <= 1 || prefix.contains(['{', '}', '*']) { ("", path) } else { (prefix, rest) }
}

async fn check(access: Access, req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, Error> {
    let user = req.extensions().get::<CurrentUser>().cloned();
    if access.allows(user.as_ref()) {
        return next.call(req).await;
    }
    let response = if user.is_none() {
        let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let next_param = if req.method() == Method::GET { target } else { "/" };
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/login?next={}", urlencoding::encode(next_param))))
            .finish()
    } else {
        AppError::forbidden().error_response()
    };
    Ok(req.into_response(response))
}

/// The address of the person at the other end, for login throttling and audit. Behind
/// a reverse proxy every request comes from the proxy, so the proxy's
/// `X-Forwarded-For` is read — but only when the peer is one of `trusted_proxies`,
/// and from the right: each trusted hop appends the address it saw, so the first
/// address from the right that is not a trusted proxy is the client. Anything to its
/// left was written by the client itself and proves nothing.
pub fn client_address(req: &actix_web::HttpRequest, trusted: &[ipnet::IpNet]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return "unknown".into();
    };
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let hops: Vec<std::net::IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer).to_string()
}

#[cfg(test)]
mod tests {
    use super::split_first_segment;

    #[test]
    fn routes_group_under_their_first_fixed_segment() {
        assert_eq!(split_first_segment("/requests/{id}/pyc/new"), ("/requests", "/{id}/pyc/new"));
        assert_eq!(split_first_segment("/requests"), ("/requests", ""));
        assert_eq!(split_first_segment("/app/b/{bid}"), ("/app", "/b/{bid}"));
        assert_eq!(split_first_segment("/"), ("", "/"));
        assert_eq!(split_first_segment("/{slug}/x"), ("", "/{slug}/x"));
    }
}
