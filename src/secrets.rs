//! Secrets at rest (POS keys, later bank credentials): XChaCha20-Poly1305 with a key
//! derived from the app's secret key for this purpose only. Stored as base64 of
//! nonce ‖ ciphertext; the database never holds the clear text.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::config::SecretKey;

fn cipher(secret: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(&secret.derive("secrets-at-rest-v1")))
}

pub fn seal(secret: &SecretKey, clear: &str) -> Result<String, String> {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher(secret).encrypt(XNonce::from_slice(&nonce), clear.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

pub fn open(secret: &SecretKey, stored: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(stored).map_err(|e| e.to_string())?;
    if bytes.len() < 24 {
        return Err("sealed value too short".into());
    }
    let (nonce, sealed) = bytes.split_at(24);
    let clear = cipher(secret)
        .decrypt(XNonce::from_slice(nonce), sealed)
        .map_err(|_| "cannot decrypt: wrong key or damaged value".to_string())?;
    String::from_utf8(clear).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let a = SecretKey::from_bytes(vec![7; 64]);
        let b = SecretKey::from_bytes(vec![8; 64]);
        let sealed = seal(&a, "KEY1-ABC-123").unwrap_or_default();
        assert!(!sealed.contains("KEY1"));
        assert_eq!(open(&a, &sealed).as_deref(), Ok("KEY1-ABC-123"));
        assert!(open(&b, &sealed).is_err());
        assert_ne!(seal(&a, "x").unwrap_or_default(), seal(&a, "x").unwrap_or_default(), "fresh nonce each time");
    }
}
