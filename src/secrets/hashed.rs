//! Keyed hashes of the tokens people present (API keys, v1 and OAuth tokens, OAuth
//! client secrets and codes, mailed links): HMAC-SHA256 under a key derived from
//! `secret_key` for one purpose, so a stolen database gives no working token.
//!
//! A hash cannot be re-derived without the token, so `rotate-key` cannot move them to a
//! new key. Instead every lookup goes through [`Presented::find`]: the token is hashed
//! under the current key, then under each of `old_secret_keys`; a row found under an
//! old key gets its hash rewritten under the current one right there, so once every
//! live token has been used once the old key can go. A token never used while its
//! key was still configured stops working when the key is dropped.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Keyring;
use crate::config::SecretKey;

/// What a hash is for: each purpose has its own derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose(&'static str);

/// API keys, v1 tokens and everything OAuth (client secrets, codes, access and
/// refresh tokens).
pub const API_CREDENTIAL: Purpose = Purpose("api-keys");
/// Tokens of mailed or handed-over one-time links (account links, invitations,
/// bank-link handoffs).
pub const LINK_TOKEN: Purpose = Purpose("mailed-link-token");

fn hash_under(key: &SecretKey, purpose: Purpose, token: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.derive(purpose.0))
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Keyring {
    /// The hash to store for a new token (under the current key).
    pub fn hash(&self, purpose: Purpose, token: &str) -> String {
        hash_under(&self.current, purpose, token)
    }

    /// A token as presented, ready to be looked up.
    pub fn presented(&self, purpose: Purpose, token: &str) -> Presented {
        Presented { hashes: self.all().map(|k| hash_under(k, purpose, token)).collect() }
    }
}

/// The hashes a presented token may be stored under: the current key's first.
#[derive(Debug, Clone)]
pub struct Presented {
    hashes: Vec<String>,
}

impl Presented {
    /// Its hash under the current key (what a row found by [`Presented::find`] now holds).
    pub fn current(&self) -> &str {
        &self.hashes[0]
    }

    /// The row the token names: `find` is asked with each hash in turn, current key
    /// first. A row found under an old key is passed to `upgrade` with that old hash
    /// and the current one, to rewrite the stored hash (conditionally on the old one,
    /// so a concurrent change is not overwritten) on the caller's connection `conn`,
    /// in its transaction.
    pub fn find<C: ?Sized, T, E>(
        &self,
        conn: &mut C,
        mut find: impl FnMut(&mut C, &str) -> Result<Option<T>, E>,
        upgrade: impl FnOnce(&mut C, &T, &str, &str) -> Result<(), E>,
    ) -> Result<Option<T>, E> {
        if let Some(row) = find(conn, self.current())? {
            return Ok(Some(row));
        }
        for old in &self.hashes[1..] {
            if let Some(row) = find(conn, old)? {
                tracing::info!("token hashed under an old secret key: rehashed under the current one");
                upgrade(conn, &row, old, self.current())?;
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

/// The usual `upgrade` for [`Presented::find`]: rewrites `table.column` of row `id`
/// from the old hash to the new one, only if it still holds the old one.
#[macro_export]
macro_rules! rehash {
    ($conn:expr, $table:ident, $column:ident, $id:expr, $old:expr, $new:expr) => {{
        use diesel::prelude::*;
        use $crate::db::schema::$table;
        diesel::update($table::table.find($id).filter($table::$column.eq($old)))
            .set($table::$column.eq($new))
            .execute($conn)
            .map(drop)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes(vec![b; 64])
    }

    #[test]
    fn hashes_are_keyed_by_key_and_purpose() {
        let a = Keyring::new(key(1), vec![]);
        let b = Keyring::new(key(2), vec![]);
        assert_eq!(a.hash(LINK_TOKEN, "t"), a.hash(LINK_TOKEN, "t"));
        assert_ne!(a.hash(LINK_TOKEN, "t"), b.hash(LINK_TOKEN, "t"));
        assert_ne!(a.hash(LINK_TOKEN, "t"), a.hash(LINK_TOKEN, "u"));
        assert_ne!(a.hash(LINK_TOKEN, "t"), a.hash(API_CREDENTIAL, "t"));
    }

    #[test]
    fn a_row_under_an_old_key_is_found_and_upgraded_once() {
        let before = Keyring::new(key(1), vec![]);
        let after = Keyring::new(key(2), vec![key(1)]);
        // The "table": one stored hash, and how many times it was rewritten.
        let mut table = (before.hash(API_CREDENTIAL, "hg_x"), 0);
        for _ in 0..2 {
            let found = after.presented(API_CREDENTIAL, "hg_x").find(
                &mut table,
                |t, h| Ok::<_, ()>((t.0 == h).then_some(7)),
                |t, row, old, new| {
                    assert_eq!((*row, old), (7, t.0.as_str()));
                    *t = (new.to_string(), t.1 + 1);
                    Ok(())
                },
            );
            assert_eq!(found, Ok(Some(7)));
        }
        assert_eq!(table, (after.hash(API_CREDENTIAL, "hg_x"), 1), "the second use finds it under the current key");
        let mut other = before.hash(API_CREDENTIAL, "hg_y");
        let gone = Keyring::new(key(2), vec![]).presented(API_CREDENTIAL, "hg_y");
        assert_eq!(gone.find(&mut other, |o, h| Ok::<_, ()>((*o == h).then_some(1)), |_, _, _, _| Ok(())), Ok(None));
    }
}
