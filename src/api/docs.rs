//! The API's documentation: the OpenAPI 3.1 document derived from the handlers'
//! annotations and types (`/v2/openapi.json`), and a reference page rendered from that
//! same document by the server (`/docs/api`), so it works offline and cannot drift.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, AuthorizationCode, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder};

use super::types;
use crate::error::AppResult;
use crate::web::AppState;
use crate::web::layout::{Ctx, Layout, render};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hubgate API",
        version = "2",
        description = "API tương thích Casso (v2): phần mềm viết cho Casso chạy được với hubgate chỉ bằng cách đổi địa chỉ gốc. Mọi câu trả lời có dạng `{error, message, data}`: `error` 0 là thành công."
    ),
    paths(
        super::token,
        super::user_info,
        super::accounts,
        super::account,
        super::transactions,
        super::transaction,
        super::sync,
        super::create_webhook,
        super::delete_webhooks_by_url,
        super::get_webhook,
        super::update_webhook,
        super::delete_webhook,
    ),
    components(schemas(types::ErrorBody)),
    tags(
        (name = TAG_AUTH, description = "Đổi khóa lấy token"),
        (name = TAG_INFO, description = "Người dùng và doanh nghiệp của khóa"),
        (name = TAG_ACCOUNTS, description = "Tài khoản ngân hàng đã liên kết"),
        (name = TAG_TX, description = "Giao dịch và đồng bộ"),
        (name = TAG_WEBHOOK, description = "Nhận giao dịch mới qua webhook"),
    ),
    modifiers(&Common)
)]
pub struct ApiDoc;

pub const TAG_AUTH: &str = "Xác thực";
pub const TAG_INFO: &str = "Thông tin";
pub const TAG_ACCOUNTS: &str = "Tài khoản";
pub const TAG_TX: &str = "Giao dịch";
pub const TAG_WEBHOOK: &str = "Webhook";

/// What every operation shares: the credentials it takes and the errors any request
/// can meet, added here once instead of on each handler.
struct Common;

impl utoipa::Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apikey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Apikey <khóa>`: khóa tạo ở thẻ \"API\" của doanh nghiệp",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Token lấy từ `POST /v1/token` (gửi kèm hoặc không kèm chữ `Bearer`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::AuthorizationCode(AuthorizationCode::new(
                    "/oauth/authorize",
                    "/oauth/token",
                    Scopes::from_iter(super::oauth::SCOPES.iter().copied()),
                ))],
                "Ứng dụng bên thứ ba (đăng ký ở /app/developer): mã ủy quyền với PKCE S256 bắt buộc; refresh token đổi mới mỗi lần dùng",
            )),
        );
        let error = |what: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
            for (method, op) in
                ["get", "post", "put", "delete"].into_iter().zip(ops).filter_map(|(m, o)| Some((m, o.as_mut()?)))
            {
                // An endpoint `security(())` leaves open keeps that; the rest take a key,
                // a token, or an OAuth token holding the endpoint's scope.
                if op.security.is_none() {
                    let scope = needed_scope(path, method);
                    op.security = Some(vec![
                        SecurityRequirement::new("apikey", Vec::<String>::new()),
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                        SecurityRequirement::new("oauth2", [scope]),
                    ]);
                    op.responses
                        .responses
                        .entry("403".into())
                        .or_insert_with(|| error(&format!("Token OAuth thiếu quyền `{scope}`")));
                }
                let r = &mut op.responses.responses;
                r.entry("401".into())
                    .or_insert_with(|| error("Thiếu khóa, khóa sai, đã thu hồi hoặc token đã hết hạn"));
                r.entry("422".into())
                    .or_insert_with(|| error("Tham số hoặc thân yêu cầu không hợp lệ: message nói rõ chỗ sai"));
                if path.starts_with("/v2/") {
                    r.entry("429".into()).or_insert_with(|| {
                        error("Quá nhiều yêu cầu với khóa này: chờ số giây trong header Retry-After")
                    });
                }
                r.entry("503".into()).or_insert_with(|| error("Hệ thống đang bận: thử lại sau"));
            }
        }
    }
}

/// Where the ids of one answer lead (from, to, the id's place in the answer), so a
/// client, and schemathesis's stateful run, can follow them.
const LINKS: &[(&str, &str, &str)] = &[
    ("create_webhook", "get_webhook", "$response.body#/data/id"),
    ("create_webhook", "update_webhook", "$response.body#/data/id"),
    ("create_webhook", "delete_webhook", "$response.body#/data/id"),
    ("accounts", "account", "$response.body#/data/0/id"),
    ("transactions", "transaction", "$response.body#/data/records/0/id"),
];

/// The scope an endpoint needs, as `super::caller` is called with it.
pub fn needed_scope(path: &str, method: &str) -> &'static str {
    if path.starts_with("/v2/webhooks") {
        "webhooks"
    } else if path == "/v2/sync" && method == "post" {
        "sync"
    } else {
        "read"
    }
}

/// The document with this server's address, as JSON. Two things are added to what the
/// derive produces: links (utoipa 5's `Link` serialises `operation_id` in snake case,
/// which no client reads) and the webhook body's "`webhook` or `url`" rule.
pub fn document(base_url: &str) -> Value {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![utoipa::openapi::Server::new(base_url.trim_end_matches('/'))]);
    let mut v = serde_json::to_value(doc).unwrap_or(Value::Null);
    for item in v["paths"].as_object_mut().into_iter().flat_map(|p| p.values_mut()) {
        for op in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            let id = op["operationId"].as_str().unwrap_or("").to_string();
            for (_, to, value) in LINKS.iter().filter(|(from, _, _)| *from == id) {
                op["responses"]["200"]["links"][*to] =
                    serde_json::json!({ "operationId": to, "parameters": { "id": value } });
            }
        }
    }
    // OAuth's endpoints as absolute URLs of this server, as OpenAPI asks.
    let base = base_url.trim_end_matches('/');
    if let Some(flow) = v["components"]["securitySchemes"]["oauth2"]["flows"].get_mut("authorizationCode") {
        flow["authorizationUrl"] = Value::String(format!("{base}/oauth/authorize"));
        flow["tokenUrl"] = Value::String(format!("{base}/oauth/token"));
        flow["refreshUrl"] = Value::String(format!("{base}/oauth/token"));
    }
    if let Some(body) = v["components"]["schemas"].get_mut("WebhookRequest") {
        body["anyOf"] = serde_json::json!([{ "required": ["webhook"] }, { "required": ["url"] }]);
    }
    v
}

/// `GET /v2/openapi.json`.
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.config.base_url))
}

// ---------------------------------------------------------------- the reference page

/// A type as the page shows it: its text and, for a named schema, the anchor it links to.
struct Ty {
    text: String,
    link: Option<String>,
}

struct Field {
    name: String,
    place: String,
    required: bool,
    ty: Ty,
    notes: String,
}

struct Reply {
    status: String,
    description: String,
    ty: Option<Ty>,
}

struct Op {
    anchor: String,
    method: String,
    path: String,
    summary: String,
    description: String,
    authenticated: bool,
    params: Vec<Field>,
    body: Option<Ty>,
    replies: Vec<Reply>,
}

struct Group {
    name: String,
    ops: Vec<Op>,
}

struct Model {
    name: String,
    description: String,
    fields: Vec<Field>,
    ty: Option<Ty>,
}

#[derive(Template)]
#[template(path = "api/reference.html")]
struct ReferencePage {
    l: Layout,
    base_url: String,
    intro: String,
    groups: Vec<Group>,
    models: Vec<Model>,
    scopes: &'static [(&'static str, &'static str)],
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn schema_name(reference: &str) -> String {
    reference.rsplit('/').next().unwrap_or(reference).to_string()
}

/// `integer (int64)`, `string | null`, `Account[]`, a link for `$ref`s.
fn ty(v: &Value) -> Ty {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = schema_name(r);
        return Ty { text: name.clone(), link: Some(name) };
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = v.get(key).and_then(Value::as_array) {
            let mut link = None;
            let parts: Vec<String> = list
                .iter()
                .map(|x| {
                    let t = ty(x);
                    link = link.take().or(t.link);
                    t.text
                })
                .collect();
            return Ty { text: parts.join(" | "), link };
        }
    }
    let kinds: Vec<String> = match v.get("type") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec!["object".to_string()],
    };
    let mut link = None;
    let parts: Vec<String> = kinds
        .iter()
        .map(|k| match k.as_str() {
            "array" => {
                let inner = ty(v.get("items").unwrap_or(&Value::Null));
                link = inner.link;
                format!("{}[]", inner.text)
            }
            _ => match v.get("format").and_then(Value::as_str) {
                Some(f) if k != "null" => format!("{k} ({f})"),
                _ => k.clone(),
            },
        })
        .collect();
    Ty { text: parts.join(" | "), link }
}

/// Bounds and enumerations, said plainly.
fn notes(v: &Value) -> String {
    let mut out = Vec::new();
    for (key, label) in [("minimum", "≥"), ("maximum", "≤"), ("maxLength", "tối đa ký tự:")] {
        if let Some(n) = v.get(key) {
            out.push(format!("{label} {n}"));
        }
    }
    out.join(", ")
}

fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, p)| Field {
                    name: name.clone(),
                    place: String::new(),
                    required: required.contains(&name.as_str()),
                    ty: ty(p),
                    notes: [text(p, "description"), notes(p)]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" — "),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn json_schema(content: &Value) -> Option<Ty> {
    content.get("content")?.get("application/json")?.get("schema").map(ty)
}

fn page_model(doc: &Value) -> (Vec<Group>, Vec<Model>) {
    let mut groups: Vec<Group> = Vec::new();
    let global_auth = doc.get("security").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let authenticated = match op.get("security").and_then(Value::as_array) {
                Some(list) => !list.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty())),
                None => global_auth,
            };
            let params = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| Field {
                    name: text(p, "name"),
                    place: match p["in"].as_str() {
                        Some("path") => "đường dẫn".into(),
                        Some("query") => "query".into(),
                        Some(other) => other.into(),
                        None => String::new(),
                    },
                    required: p["required"].as_bool().unwrap_or(false),
                    ty: ty(&p["schema"]),
                    notes: [text(p, "description"), notes(&p["schema"])]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" — "),
                })
                .collect();
            let replies = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, r)| Reply {
                    status: status.clone(),
                    description: text(r, "description"),
                    ty: json_schema(r),
                })
                .collect();
            let tag = op["tags"][0].as_str().unwrap_or("Khác").to_string();
            let built = Op {
                anchor: text(op, "operationId"),
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(op, "summary"),
                description: text(op, "description"),
                authenticated,
                params,
                body: op.get("requestBody").and_then(json_schema),
                replies,
            };
            match groups.iter_mut().find(|g| g.name == tag) {
                Some(g) => g.ops.push(built),
                None => groups.push(Group { name: tag, ops: vec![built] }),
            }
        }
    }
    // The document's tag order, then each group's operations by path and method.
    let order: Vec<&str> = doc["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    groups.sort_by_key(|g| order.iter().position(|t| *t == g.name).unwrap_or(usize::MAX));
    let rank = |m: &str| ["GET", "POST", "PUT", "DELETE"].iter().position(|x| *x == m).unwrap_or(9);
    for g in &mut groups {
        g.ops.sort_by(|a, b| (&a.path, rank(&a.method)).cmp(&(&b.path, rank(&b.method))));
    }
    let models = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| {
            let fields = fields(s);
            Model {
                name: name.clone(),
                description: text(s, "description"),
                ty: fields.is_empty().then(|| ty(s)),
                fields,
            }
        })
        .collect();
    (groups, models)
}

/// `GET /docs/api`: the reference, readable without the network.
pub async fn reference(ctx: Ctx) -> AppResult<HttpResponse> {
    let base_url = ctx.state.config.base_url.trim_end_matches('/').to_string();
    let doc = document(&base_url);
    let (groups, models) = page_model(&doc);
    render(&ReferencePage {
        l: ctx.layout("Tài liệu API", &[]),
        intro: text(&doc["info"], "description"),
        base_url,
        groups,
        models,
        scopes: super::oauth::SCOPES,
    })
}
