//! API keys and the v1 access tokens exchanged for them. A key is shown once; the
//! database keeps its keyed hash (HMAC-SHA256 under a key derived from the app's
//! secret): checking one is a hash and one indexed lookup, fast enough for every
//! request, and a stolen database does not give working keys.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::schema::{api_keys, api_tokens};
use crate::db::{DbConn, now};
use crate::error::{AppError, AppResult};
use crate::secrets::hashed::{self, Presented};

/// v1 tokens live six hours, as Casso's.
pub const TOKEN_HOURS: i64 = 6;

#[derive(Queryable, Debug, Clone)]
pub struct ApiKey {
    pub id: i64,
    pub business_id: i64,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub created_by: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub revoked_at: Option<NaiveDateTime>,
}

/// The hash to store for a new credential (lookups go through [`presented`]).
pub fn hash(config: &Config, secret: &str) -> String {
    config.keyring().hash(hashed::API_CREDENTIAL, secret)
}

/// A credential as presented, to be found under the current or an old secret key.
pub fn presented(config: &Config, secret: &str) -> Presented {
    config.keyring().presented(hashed::API_CREDENTIAL, secret)
}

pub fn random(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

pub fn keys_of(conn: &mut DbConn, business_id: i64) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .filter(api_keys::business_id.eq(business_id))
        .order(api_keys::id.desc())
        .select(api_keys::all_columns)
        .load(conn)
}

/// A new key for a business: returns it with the clear key, which is never stored.
pub fn create(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    business_id: i64,
    name: &str,
) -> AppResult<(ApiKey, String)> {
    let name: String = name.trim().chars().take(80).collect();
    if name.is_empty() {
        return Err(AppError::Validation("Đặt tên cho khóa API (ví dụ: Phần mềm bán hàng).".into()));
    }
    let user_id = actor.user_id.ok_or_else(AppError::forbidden)?;
    let prefix = format!("hg_{}", random(6));
    let clear = format!("{prefix}_{}", random(32));
    let key_hash = hash(config, &clear);
    crate::db::tx(conn, |conn| {
        let active = api_keys::table
            .filter(api_keys::business_id.eq(business_id))
            .filter(api_keys::revoked_at.is_null())
            .count()
            .get_result::<i64>(conn)?;
        if active >= 20 {
            return Err(AppError::Validation(
                "Mỗi doanh nghiệp có tối đa 20 khóa đang dùng; hãy thu hồi khóa cũ.".into(),
            ));
        }
        let key: ApiKey = diesel::insert_into(api_keys::table)
            .values((
                api_keys::business_id.eq(business_id),
                api_keys::name.eq(&name),
                api_keys::prefix.eq(&prefix),
                api_keys::key_hash.eq(&key_hash),
                api_keys::created_by.eq(user_id),
                api_keys::created_at.eq(now()),
            ))
            .returning(api_keys::all_columns)
            .get_result(conn)?;
        audit::record(
            conn,
            actor,
            "api_key",
            key.id,
            "create",
            None,
            Some(serde_json::json!({ "business_id": business_id, "name": name, "prefix": prefix })),
        )?;
        Ok((key, clear))
    })
}

pub fn revoke(conn: &mut DbConn, actor: &Actor, business_id: i64, key_id: i64) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let n = diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(key_id))
                .filter(api_keys::business_id.eq(business_id))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(now()))
        .execute(conn)?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        // Its v1 tokens die with it.
        diesel::delete(api_tokens::table.filter(api_tokens::api_key_id.eq(key_id))).execute(conn)?;
        audit::record(conn, actor, "api_key", key_id, "revoke", None, None)?;
        Ok(())
    })
}

/// What a request's credential belongs to: an API key, or an OAuth app (whose rate is
/// counted across every business it serves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Key(i64),
    App(i64),
}

impl Client {
    /// How the audit log names it.
    pub fn label(&self) -> String {
        match self {
            Client::Key(id) => format!("api-key-{id}"),
            Client::App(id) => format!("oauth-app-{id}"),
        }
    }
}

/// Who a request is, once its credential checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client: Client,
    pub business_id: i64,
    pub user_id: i64,
    /// The scopes' bits (`oauth::scope_bit`); a key has them all.
    pub scopes: u8,
}

/// The live key with this clear value; notes its use (at most once a minute).
pub fn by_key(conn: &mut DbConn, config: &Config, clear: &str) -> QueryResult<Option<Caller>> {
    let found: Option<(i64, i64, i64, Option<NaiveDateTime>)> = presented(config, clear.trim()).find(
        conn,
        |conn, h| {
            crate::with_conn!(conn, |c| api_keys::table
                .filter(api_keys::key_hash.eq(h))
                .filter(api_keys::revoked_at.is_null())
                .select((api_keys::id, api_keys::business_id, api_keys::created_by, api_keys::last_used_at))
                .first::<(i64, i64, i64, Option<NaiveDateTime>)>(c)
                .optional())
        },
        |conn, &(id, ..), old, new| crate::rehash!(conn, api_keys, key_hash, id, old, new),
    )?;
    let Some((key_id, business_id, user_id, last)) = found else { return Ok(None) };
    let t = now();
    if last.is_none_or(|l| t - l > chrono::Duration::minutes(1)) {
        diesel::update(api_keys::table.find(key_id)).set(api_keys::last_used_at.eq(t)).execute(conn)?;
    }
    Ok(Some(Caller { client: Client::Key(key_id), business_id, user_id, scopes: super::oauth::ALL_SCOPES }))
}

/// A live v1 token's caller.
pub fn by_token(conn: &mut DbConn, config: &Config, token: &str) -> QueryResult<Option<Caller>> {
    let found: Option<(i64, i64, i64, i64)> = presented(config, token.trim()).find(
        conn,
        |conn, h| {
            api_tokens::table
                .inner_join(api_keys::table)
                .filter(api_tokens::token_hash.eq(h))
                .filter(api_tokens::expires_at.gt(now()))
                .filter(api_keys::revoked_at.is_null())
                .select((api_tokens::id, api_keys::id, api_keys::business_id, api_keys::created_by))
                .first::<(i64, i64, i64, i64)>(conn)
                .optional()
        },
        |conn, &(id, ..), old, new| crate::rehash!(conn, api_tokens, token_hash, id, old, new),
    )?;
    Ok(found.map(|(_, key_id, business_id, user_id)| Caller {
        client: Client::Key(key_id),
        business_id,
        user_id,
        scopes: super::oauth::ALL_SCOPES,
    }))
}

/// Casso v1's exchange: an API key for a 6-hour access token.
pub fn exchange(conn: &mut DbConn, config: &Config, clear_key: &str) -> AppResult<Option<(String, i64)>> {
    let Some(Caller { client: Client::Key(key_id), .. }) = by_key(conn, config, clear_key)? else { return Ok(None) };
    let token = random(48);
    let t = now();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::api_key_id.eq(key_id),
            api_tokens::token_hash.eq(hash(config, &token)),
            api_tokens::created_at.eq(t),
            api_tokens::expires_at.eq(t + chrono::Duration::hours(TOKEN_HOURS)),
        ))
        .execute(conn)?;
    // Expired tokens are of no use to anyone: sweep the key's old ones.
    diesel::delete(api_tokens::table.filter(api_tokens::api_key_id.eq(key_id)).filter(api_tokens::expires_at.lt(t)))
        .execute(conn)?;
    Ok(Some((token, TOKEN_HOURS * 3600)))
}
