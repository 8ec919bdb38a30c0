//! Secrets at rest (POS keys, bank credentials and tokens, webhook secrets, Zalo OA
//! tokens): XChaCha20-Poly1305 under a key derived from the app's secret key for this
//! purpose only; the database never holds the clear text.
//!
//! Stored form: `v2:<key id>:<base64 of nonce ‖ ciphertext>`. The key id names the
//! master key that sealed the value, so `secret_key` can be replaced while the previous
//! keys stay readable (`old_secret_keys`) until `hubgate rotate-key` re-seals everything
//! under the current one. The associated data binds the value to its table, column and
//! row (and to the key id): a value copied to another row or field does not open.
//!
//! Values written before the key id existed (base64 without a prefix, no associated
//! data) still open under any configured key; rotation upgrades them.

pub mod hashed;
pub mod rotate;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::config::SecretKey;
use crate::error::AppError;

/// A column holding sealed values, and the row key its values are bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub table: &'static str,
    pub column: &'static str,
    /// The row's primary key; it is part of the binding, so a value can be sealed only
    /// once the row exists (inserts seal in the same transaction, right after the insert).
    pub id_column: &'static str,
    /// What people call it, in Vietnamese, for the error shown when it does not open.
    pub label: &'static str,
}

impl Column {
    fn binding(&self, row: i64) -> String {
        format!("{}.{}:{row}", self.table, self.column)
    }
}

pub const PYC_KEY1: Column = Column { table: "pycs", column: "key1_enc", id_column: "id", label: "Key1" };
pub const PYC_KEY2: Column = Column { table: "pycs", column: "key2_enc", id_column: "id", label: "Key2" };
pub const BANK_CREDENTIALS: Column = Column {
    table: "bank_connections",
    column: "credentials_sealed",
    id_column: "id",
    label: "thông tin đăng nhập ngân hàng",
};
pub const BANK_TOKENS: Column =
    Column {
        table: "bank_connections", column: "tokens_sealed", id_column: "id", label: "phiên truy cập ngân hàng"
    };
pub const INTEGRATION_SECRET: Column =
    Column {
        table: "integrations", column: "secret_sealed", id_column: "id", label: "khóa bí mật của tích hợp"
    };
pub const ZALO_ACCESS: Column =
    Column { table: "zalo_tokens", column: "access_sealed", id_column: "id", label: "access token Zalo OA" };
pub const ZALO_REFRESH: Column =
    Column { table: "zalo_tokens", column: "refresh_sealed", id_column: "id", label: "refresh token Zalo OA" };

/// Every sealed column: what `rotate-key` re-seals. Code seals only through these
/// constants, and a unit test checks the schema has no sealed column missing here.
pub const SEALED_COLUMNS: &[Column] =
    &[PYC_KEY1, PYC_KEY2, BANK_CREDENTIALS, BANK_TOKENS, INTEGRATION_SECRET, ZALO_ACCESS, ZALO_REFRESH];

const VERSION: &str = "v2";
const NONCE: usize = 24;
const TAG: usize = 16;

/// Why a stored value does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("sealed value is malformed ({0})")]
    Malformed(&'static str),
    #[error("sealed under key {0}, which is neither secret_key nor one of old_secret_keys")]
    UnknownKey(String),
    #[error("sealed value does not open for {0} (copied from another row or field, or damaged)")]
    Refused(String),
    #[error("old-format sealed value opens under no configured key (secret_key, old_secret_keys)")]
    NoKey,
    #[error("sealed value is not UTF-8 text")]
    NotText,
    #[error("cannot seal: {0}")]
    Seal(String),
}

impl SecretError {
    fn reason_vi(&self) -> &'static str {
        match self {
            SecretError::UnknownKey(_) | SecretError::NoKey => {
                "dữ liệu được mã hóa bằng một khóa bí mật máy chủ không còn được cấu hình"
            }
            SecretError::Refused(_) => "dữ liệu không thuộc về bản ghi này hoặc đã bị hỏng",
            SecretError::Malformed(_) | SecretError::NotText | SecretError::Seal(_) => "dữ liệu đã lưu bị hỏng",
        }
    }

    /// What a feature says when the value it needs does not open (logged in full).
    pub fn explain(&self, column: &Column, row: i64) -> String {
        tracing::warn!(table = column.table, column = column.column, row, error = %self, "sealed value does not open");
        format!(
            "Không mở được {} đã lưu: {}. Hãy nhập lại {} hoặc báo quản trị viên.",
            column.label,
            self.reason_vi(),
            column.label
        )
    }

    /// The error a feature returns when the value it needs does not open: a person can
    /// act on it (enter the value again, or tell the administrator), so not a 500.
    pub fn for_people(&self, column: &Column, row: i64) -> AppError {
        match self {
            SecretError::Seal(e) => AppError::internal(anyhow::anyhow!("{e}")),
            _ => AppError::Conflict(self.explain(column, row)),
        }
    }
}

/// The master keys that may open sealed values: the current one (which seals) and the
/// previous ones (which only open, until `rotate-key` has re-sealed their values).
#[derive(Clone, Debug)]
pub struct Keyring {
    current: SecretKey,
    old: Vec<SecretKey>,
}

/// The id written before every value: 4 bytes derived from the master key, enough to
/// tell a handful of configured keys apart without revealing anything about them.
pub fn key_id(key: &SecretKey) -> String {
    hex::encode(&key.derive("secrets-key-id")[..4])
}

fn cipher_v2(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(&key.derive("secrets-at-rest-v2")))
}

fn cipher_legacy(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(&key.derive("secrets-at-rest-v1")))
}

// The key id is part of the associated data too, so the prefix cannot be swapped.
fn aad(kid: &str, column: &Column, row: i64) -> Vec<u8> {
    format!("hubgate-sealed-{VERSION}\n{kid}\n{}", column.binding(row)).into_bytes()
}

fn decode(b64: &str) -> Result<Vec<u8>, SecretError> {
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| SecretError::Malformed("not base64"))?;
    if bytes.len() < NONCE + TAG {
        return Err(SecretError::Malformed("too short"));
    }
    Ok(bytes)
}

/// A stored value split into its parts.
#[derive(Debug, PartialEq, Eq)]
enum Stored<'a> {
    V2 {
        kid: &'a str,
        body: &'a str,
    },
    /// Base64 without a prefix (`:` is not a base64 character).
    Legacy(&'a str),
}

fn parse(stored: &str) -> Result<Stored<'_>, SecretError> {
    let Some((version, rest)) = stored.split_once(':') else {
        return Ok(Stored::Legacy(stored));
    };
    if version != VERSION {
        return Err(SecretError::Malformed("unknown version"));
    }
    let (kid, body) = rest.split_once(':').ok_or(SecretError::Malformed("no key id"))?;
    if kid.len() != 8 || !kid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SecretError::Malformed("bad key id"));
    }
    Ok(Stored::V2 { kid, body })
}

impl Keyring {
    /// Old keys equal to the current one are dropped (a harmless leftover in the config).
    pub fn new(current: SecretKey, old: Vec<SecretKey>) -> Self {
        let id = key_id(&current);
        let old = old.into_iter().filter(|k| key_id(k) != id).collect();
        Keyring { current, old }
    }

    pub fn current_id(&self) -> String {
        key_id(&self.current)
    }

    fn all(&self) -> impl Iterator<Item = &SecretKey> {
        std::iter::once(&self.current).chain(self.old.iter())
    }

    /// Seals `clear` for `column` of row `row` under the current key.
    pub fn seal(&self, column: &Column, row: i64, clear: &str) -> Result<String, SecretError> {
        let kid = self.current_id();
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher_v2(&self.current)
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: clear.as_bytes(), aad: &aad(&kid, column, row) })
            .map_err(|e| SecretError::Seal(e.to_string()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}:{kid}:{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// Opens a value stored in `column` of row `row`, in either format.
    pub fn open(&self, column: &Column, row: i64, stored: &str) -> Result<String, SecretError> {
        let clear = match parse(stored)? {
            Stored::V2 { kid, body } => {
                let key = self.all().find(|k| key_id(k) == kid).ok_or_else(|| SecretError::UnknownKey(kid.into()))?;
                let bytes = decode(body)?;
                let (nonce, sealed) = bytes.split_at(NONCE);
                cipher_v2(key)
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad(kid, column, row) })
                    .map_err(|_| SecretError::Refused(column.binding(row)))?
            }
            Stored::Legacy(body) => {
                let bytes = decode(body)?;
                let (nonce, sealed) = bytes.split_at(NONCE);
                self.all()
                    .find_map(|k| cipher_legacy(k).decrypt(XNonce::from_slice(nonce), sealed).ok())
                    .ok_or(SecretError::NoKey)?
            }
        };
        String::from_utf8(clear).map_err(|_| SecretError::NotText)
    }

    /// Already in the current format under the current key (rotation leaves it alone
    /// once it also opens).
    pub fn is_current(&self, stored: &str) -> bool {
        matches!(parse(stored), Ok(Stored::V2 { kid, .. }) if kid == self.current_id())
    }
}

/// How the version before key ids sealed (kept for tests that build such databases).
pub fn seal_legacy(key: &SecretKey, clear: &str) -> String {
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher_legacy(key)
        .encrypt(XNonce::from_slice(&nonce), clear.as_bytes())
        .unwrap_or_else(|_| unreachable!("any message below 256 GiB seals"));
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes(vec![b; 64])
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let a = Keyring::new(key(7), vec![]);
        let b = Keyring::new(key(8), vec![]);
        let sealed = a.seal(&PYC_KEY1, 5, "KEY1-ABC-123").unwrap_or_default();
        assert!(!sealed.contains("KEY1"));
        assert_eq!(a.open(&PYC_KEY1, 5, &sealed).as_deref(), Ok("KEY1-ABC-123"));
        assert_eq!(b.open(&PYC_KEY1, 5, &sealed), Err(SecretError::UnknownKey(a.current_id())));
        assert_ne!(a.seal(&PYC_KEY1, 5, "x").ok(), a.seal(&PYC_KEY1, 5, "x").ok(), "fresh nonce each time");
    }

    #[test]
    fn a_value_opens_only_in_its_own_row_and_column() {
        let k = Keyring::new(key(7), vec![]);
        let sealed = k.seal(&PYC_KEY1, 5, "KEY1").unwrap_or_default();
        assert_eq!(k.open(&PYC_KEY1, 6, &sealed), Err(SecretError::Refused("pycs.key1_enc:6".into())));
        assert_eq!(k.open(&PYC_KEY2, 5, &sealed), Err(SecretError::Refused("pycs.key2_enc:5".into())));
        assert_eq!(
            k.open(&INTEGRATION_SECRET, 5, &sealed),
            Err(SecretError::Refused("integrations.secret_sealed:5".into()))
        );
    }

    #[test]
    fn the_format_names_the_version_and_the_key() {
        let k = Keyring::new(key(7), vec![]);
        let sealed = k.seal(&ZALO_ACCESS, 1, "t").unwrap_or_default();
        let Ok(Stored::V2 { kid, body }) = parse(&sealed) else { panic!("not v2: {sealed}") };
        assert_eq!(kid, k.current_id());
        assert_eq!(decode(body).map(|b| b.len()).ok(), Some(NONCE + TAG + 1));
        assert!(k.is_current(&sealed));
        assert!(!Keyring::new(key(9), vec![key(7)]).is_current(&sealed));
        assert_eq!(parse("QUJD"), Ok(Stored::Legacy("QUJD")));
        assert_eq!(parse("v3:0011aabb:QUJD"), Err(SecretError::Malformed("unknown version")));
        assert_eq!(parse("v2:QUJD"), Err(SecretError::Malformed("no key id")));
        assert_eq!(parse("v2:xyz:QUJD"), Err(SecretError::Malformed("bad key id")));
        assert_eq!(parse("v2:0011aabbcc:QUJD"), Err(SecretError::Malformed("bad key id")));
    }

    #[test]
    fn old_keys_open_and_the_current_one_seals() {
        let before = Keyring::new(key(1), vec![]);
        let sealed = before.seal(&BANK_TOKENS, 3, "tok").unwrap_or_default();
        let after = Keyring::new(key(2), vec![key(1)]);
        assert_eq!(after.open(&BANK_TOKENS, 3, &sealed).as_deref(), Ok("tok"));
        assert!(!after.is_current(&sealed));
        let resealed = after.seal(&BANK_TOKENS, 3, "tok").unwrap_or_default();
        assert!(resealed.starts_with(&format!("v2:{}:", key_id(&key(2)))));
        assert_eq!(Keyring::new(key(2), vec![]).open(&BANK_TOKENS, 3, &resealed).as_deref(), Ok("tok"));
        assert!(Keyring::new(key(2), vec![]).open(&BANK_TOKENS, 3, &sealed).is_err(), "key 1 is gone");
    }

    #[test]
    fn values_of_the_previous_version_still_open() {
        let legacy = seal_legacy(&key(1), "K1-legacy");
        assert_eq!(parse(&legacy), Ok(Stored::Legacy(&legacy)));
        assert_eq!(Keyring::new(key(1), vec![]).open(&PYC_KEY1, 1, &legacy).as_deref(), Ok("K1-legacy"));
        assert_eq!(Keyring::new(key(2), vec![key(1)]).open(&PYC_KEY2, 9, &legacy).as_deref(), Ok("K1-legacy"));
        assert_eq!(Keyring::new(key(2), vec![]).open(&PYC_KEY1, 1, &legacy), Err(SecretError::NoKey));
    }

    #[test]
    fn tampered_and_truncated_values_are_refused() {
        let k = Keyring::new(key(7), vec![]);
        let sealed = k.seal(&PYC_KEY1, 5, "KEY1-ABC-123").unwrap_or_default();
        let (head, body) = sealed.rsplit_once(':').unwrap_or_default();
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = format!("{head}:{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
        assert_eq!(k.open(&PYC_KEY1, 5, &flipped), Err(SecretError::Refused("pycs.key1_enc:5".into())));
        let short = format!("{head}:{}", base64::engine::general_purpose::STANDARD.encode(&bytes[..NONCE + TAG - 1]));
        assert_eq!(k.open(&PYC_KEY1, 5, &short), Err(SecretError::Malformed("too short")));
        let cut = format!("{head}:{}", base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() - 3]));
        assert_eq!(k.open(&PYC_KEY1, 5, &cut), Err(SecretError::Refused("pycs.key1_enc:5".into())));
        assert_eq!(k.open(&PYC_KEY1, 5, "v2:00000000:%%%"), Err(SecretError::UnknownKey("00000000".into())));
        assert_eq!(k.open(&PYC_KEY1, 5, &format!("{head}:%%%")), Err(SecretError::Malformed("not base64")));
        assert_eq!(k.open(&PYC_KEY1, 5, ""), Err(SecretError::Malformed("too short")));
        // Another key id in the prefix: the associated data names the key, so it fails.
        let other = Keyring::new(key(7), vec![key(8)]);
        let swapped = sealed.replacen(&k.current_id(), &key_id(&key(8)), 1);
        assert_eq!(other.open(&PYC_KEY1, 5, &swapped), Err(SecretError::Refused("pycs.key1_enc:5".into())));
    }

    /// A sealed column added to the schema but not to the registry would be skipped
    /// by rotate-key and stop opening once the old key is dropped.
    #[test]
    fn every_sealed_column_of_the_schema_is_registered() {
        let schema = include_str!("../db/schema.rs");
        let mut table = "";
        let mut found = Vec::new();
        for line in schema.lines().map(str::trim) {
            if line.ends_with(") {") {
                table = line.split(" (").next().unwrap_or("");
            }
            let column = line.split(" ->").next().unwrap_or("");
            if line.contains(" -> ") && (column.ends_with("_sealed") || column.ends_with("_enc")) {
                found.push((table.to_string(), column.to_string()));
            }
        }
        let registered: Vec<(String, String)> =
            SEALED_COLUMNS.iter().map(|c| (c.table.to_string(), c.column.to_string())).collect();
        assert_eq!(found.len(), 7, "{found:?}");
        for f in &found {
            assert!(registered.contains(f), "{f:?} is sealed but not in SEALED_COLUMNS");
        }
    }
}
