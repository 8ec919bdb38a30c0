//! Files from outside (mail attachments, uploaded screenshots) shown inside our pages.
//!
//! What a file is comes from its bytes (magic numbers), never from its name or the
//! type its sender declared: a PNG named `x.html` is a PNG, and an "image/png" that is
//! really HTML or SVG (which can run script) is never served for viewing. Only
//! raster images and PDFs are; everything else is a download.

use actix_web::HttpResponse;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};

/// A file type the browser may show inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    /// A raster image, with its MIME type.
    Image(&'static str),
    Pdf,
}

/// How many leading bytes [`sniff`] needs (WebP is known by its 12th byte).
pub const HEAD_BYTES: i32 = 32;

/// The previewable type of these bytes, by their magic numbers.
pub fn sniff(bytes: &[u8]) -> Option<Preview> {
    match infer::get(bytes)?.mime_type() {
        m @ ("image/png" | "image/jpeg" | "image/gif" | "image/webp") => Some(Preview::Image(m)),
        "application/pdf" => Some(Preview::Pdf),
        _ => None,
    }
}

/// The policy of an image viewed on its own: nothing runs, nothing loads, no framing.
pub const IMAGE_POLICY: &str =
    "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'";
/// The policy of a PDF: sandboxed (no script, an opaque origin), framed only by our pages.
/// Chromium's PDF viewer still opens it; it is the frame's `sandbox` attribute it refuses,
/// so the page frames it without one.
pub const PDF_POLICY: &str = "sandbox; default-src 'none'; object-src 'self'; frame-ancestors 'self'";

/// A header value is ASCII: a Vietnamese file name goes as RFC 6266's `filename*`
/// (UTF-8, percent-encoded), which browsers use, beside an ASCII `filename` for the rest.
/// Sent raw, "danh-sách.csv" was bytes no standard client reads as a name.
fn disposition(kind: DispositionType, name: &str) -> ContentDisposition {
    let ascii: String = name.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '_' }).collect();
    let mut parameters = vec![DispositionParam::Filename(ascii)];
    if !name.is_ascii() {
        parameters.push(DispositionParam::FilenameExt(header::ExtendedValue {
            charset: header::Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: name.as_bytes().to_vec(),
        }));
    }
    ContentDisposition { disposition: kind, parameters }
}

/// The file for viewing in the page when its bytes are an image or a PDF; otherwise
/// the same bytes as a download the browser will not render.
pub fn view(name: &str, bytes: Vec<u8>) -> HttpResponse {
    let (mime, policy, frames) = match sniff(&bytes) {
        Some(Preview::Image(m)) => (m, IMAGE_POLICY, "DENY"),
        Some(Preview::Pdf) => ("application/pdf", PDF_POLICY, "SAMEORIGIN"),
        None => return download(name, bytes),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime))
        .insert_header(disposition(DispositionType::Inline, name))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_FRAME_OPTIONS, frames))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(bytes)
}

/// A file to save, never to render: whatever it claims to be, it is opaque bytes here.
pub fn download(name: &str, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header(disposition(DispositionType::Attachment, name))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn the_bytes_decide_not_the_name() {
        assert_eq!(sniff(PNG), Some(Preview::Image("image/png")));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Preview::Pdf));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Preview::Image("image/webp")));
        assert_eq!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"), None);
        assert_eq!(sniff(b"<!DOCTYPE html><html><script>alert(1)</script>"), None);
        assert_eq!(sniff(b""), None);
    }
}
