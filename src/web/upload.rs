//! Multipart uploads: the one way a form sends files.
//!
//! The CSRF token travels as the form's first field `_csrf` (never in the URL, where
//! access logs and `Referer` headers keep it). The CSRF middleware lets a multipart
//! body through unread only on routes declared `Upload` (see [`is_upload_route`]);
//! there the [`Upload`] extractor runs after the route's role guard, reads the first
//! field, compares it with the session's token and only then reads the files, within
//! the configured bounds on their count and total size. Over a bound the whole upload
//! is refused with 413 before anything is stored.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::LazyLock;

use actix_multipart::Multipart;
use actix_web::dev::{Payload, ResourceDef};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;

use super::AppState;
use super::access::Body;
use super::session::{CsrfToken, constant_time_eq};
use crate::error::AppError;

/// Text fields an upload form may carry besides its files (partner, month, …).
const MAX_TEXT_FIELDS: usize = 32;
/// The `_csrf` field holds a 43-character token; anything longer is not one.
const MAX_TOKEN_BYTES: usize = 256;

/// The bounds of one upload, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    pub max_files: usize,
    pub max_bytes: usize,
}

/// The declared upload routes (method POST), matched against a request's path.
static UPLOAD_ROUTES: LazyLock<Vec<ResourceDef>> = LazyLock::new(|| {
    super::all_routes().iter().filter(|r| r.body == Body::Upload).map(|r| ResourceDef::new(r.path)).collect()
});

/// Whether `path` is a route declared as an upload, which checks its own token.
pub fn is_upload_route(path: &str) -> bool {
    UPLOAD_ROUTES.iter().any(|r| r.is_match(path))
}

/// One file of an upload, read whole (within the upload's bounds).
#[derive(Debug)]
pub struct UploadedFile {
    /// The form field it came in (`files`, `screenshot`, …).
    pub field: String,
    /// The name the browser gave it.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A checked upload: the form's text fields and its files, in the order sent.
#[derive(Debug, Default)]
pub struct Upload {
    pub fields: Vec<(String, String)>,
    pub files: Vec<UploadedFile>,
}

impl Upload {
    /// The first text field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Takes the files sent in `field` out of the upload.
    pub fn take_files(&mut self, field: &str) -> Vec<UploadedFile> {
        let (taken, kept) = std::mem::take(&mut self.files).into_iter().partition(|f| f.field == field);
        self.files = kept;
        taken
    }

    async fn read(req: HttpRequest, payload: Payload) -> Result<Upload, AppError> {
        let state =
            req.app_data::<web::Data<AppState>>().ok_or_else(|| AppError::internal(anyhow::anyhow!("no state")))?;
        let limits = state.config.upload;
        // A urlencoded post here had its token checked by the middleware; it is simply
        // not an upload.
        let multipart = req.content_type().eq_ignore_ascii_case("multipart/form-data");
        if !multipart {
            return Err(AppError::Validation("Biểu mẫu tải tệp không hợp lệ; vui lòng tải lại trang.".into()));
        }
        let expected = req.extensions().get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
        // A body announced larger than the bound is refused before a byte of it is read.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_bytes as u64) {
            return Err(too_many_bytes(limits));
        }
        // The whole body (boundaries and headers included) counts, whatever it claims.
        let over = Rc::new(Cell::new(false));
        let seen = Rc::new(Cell::new(0usize));
        let (flag, counter, max) = (over.clone(), seen.clone(), limits.max_bytes);
        let counted = payload.map(move |chunk| {
            let chunk = chunk?;
            counter.set(counter.get().saturating_add(chunk.len()));
            if counter.get() > max {
                flag.set(true);
                return Err(PayloadError::Overflow);
            }
            Ok(chunk)
        });
        let mut parts = Multipart::new(req.headers(), counted);
        let refused = |e: actix_multipart::MultipartError| {
            if over.get() {
                too_many_bytes(limits)
            } else {
                AppError::Validation(format!("Tệp tải lên bị lỗi: {e}"))
            }
        };

        // The token first: nothing else is read for a request that is not genuine.
        let mut first = match parts.next().await {
            Some(Ok(field)) if field.name() == Some("_csrf") => field,
            Some(Err(e)) if over.get() => return Err(refused(e)),
            _ => {
                tracing::warn!(path = %req.path(), "upload refused: first field is not the CSRF token");
                return Err(AppError::Csrf);
            }
        };
        let mut token = Vec::new();
        while let Some(chunk) = first.next().await {
            let chunk = chunk.map_err(refused)?;
            token.extend_from_slice(&chunk);
            if token.len() > MAX_TOKEN_BYTES {
                return Err(AppError::Csrf);
            }
        }
        drop(first);
        if expected.is_empty() || !constant_time_eq(&token, expected.as_bytes()) {
            tracing::warn!(path = %req.path(), "upload refused: wrong CSRF token");
            return Err(AppError::Csrf);
        }

        let mut upload = Upload::default();
        while let Some(field) = parts.next().await {
            let mut field = field.map_err(refused)?;
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.content_disposition().and_then(|cd| cd.get_filename()).map(str::to_string);
            let mut bytes = Vec::new();
            while let Some(chunk) = field.next().await {
                bytes.extend_from_slice(&chunk.map_err(refused)?);
            }
            match file_name {
                // A file input left empty still sends a nameless, empty part.
                Some(f) if f.is_empty() && bytes.is_empty() => {}
                Some(f) => {
                    if upload.files.len() == limits.max_files {
                        return Err(AppError::TooLarge(format!(
                            "Mỗi lần chỉ tải lên được tối đa {} tệp. Không tệp nào được lưu; vui lòng chia nhỏ và gửi lại.",
                            limits.max_files
                        )));
                    }
                    upload.files.push(UploadedFile { field: name, name: f, bytes });
                }
                None => {
                    if upload.fields.len() == MAX_TEXT_FIELDS {
                        return Err(AppError::Validation("Biểu mẫu có quá nhiều trường.".into()));
                    }
                    upload.fields.push((name, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
        Ok(upload)
    }
}

fn too_many_bytes(limits: UploadLimits) -> AppError {
    AppError::TooLarge(format!(
        "Tổng dung lượng tải lên vượt quá {} MB. Không tệp nào được lưu; vui lòng gửi ít tệp hơn mỗi lần.",
        limits.max_bytes.div_ceil(1024 * 1024)
    ))
}

/// An upload not read yet: for a route whose guard is not the whole check (a merchant's
/// business is known only in the handler), so a body is read only once the handler
/// has found the person may post here.
pub struct PendingUpload(HttpRequest, Payload);

impl PendingUpload {
    pub async fn read(self) -> Result<Upload, AppError> {
        Upload::read(self.0, self.1).await
    }
}

impl FromRequest for PendingUpload {
    type Error = AppError;
    type Future = std::future::Ready<Result<PendingUpload, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        std::future::ready(Ok(PendingUpload(req.clone(), payload.take())))
    }
}

impl FromRequest for Upload {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Upload, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(Upload::read(req.clone(), payload.take()))
    }
}
