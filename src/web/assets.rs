//! The static files, compiled into the binary so that a copied or `cargo install`ed
//! `hubgate` serves its stylesheet and script from any folder. `static_dir` (for
//! development) serves a folder from disk instead, uncached.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.css", mime: "text/css; charset=utf-8", bytes: include_bytes!("../../static/app.css") },
    Asset { name: "app.js", mime: "text/javascript; charset=utf-8", bytes: include_bytes!("../../static/app.js") },
];

/// A short hash of the embedded stylesheet and script, appended to their URLs: a new
/// version is fetched at once even though static files are cached for a day.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for a in ASSETS {
            hash.update(a.bytes);
        }
        hex::encode(&hash.finalize()[..6])
    })
}

/// Mounts `/static`: the embedded files, or the development folder when configured.
pub fn configure(cfg: &mut web::ServiceConfig, dev_dir: Option<&std::path::Path>) {
    match dev_dir {
        Some(dir) => {
            cfg.service(
                web::scope("/static")
                    .wrap(actix_web::middleware::DefaultHeaders::new().add((header::CACHE_CONTROL, "no-cache")))
                    .service(actix_files::Files::new("", dir).use_etag(true).use_last_modified(true)),
            );
        }
        None => {
            cfg.route("/static/{name}", web::get().to(embedded));
        }
    }
}

async fn embedded(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name.as_str()) else {
        return super::pages::not_found(req).await;
    };
    // One version for all files: the binary's; a new build is a new ETag.
    let etag = format!("\"{}\"", version());
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    resp.insert_header((header::ETAG, etag)).insert_header((header::CACHE_CONTROL, "public, max-age=86400"));
    if fresh { resp.finish() } else { resp.content_type(asset.mime).body(asset.bytes) }
}
