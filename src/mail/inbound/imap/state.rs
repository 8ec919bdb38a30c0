//! The reading state of an IMAP mailbox, one row per account: UIDVALIDITY and the last
//! UID stored, and the lease that lets one node at a time read it.
//!
//! Every write of the reader is fenced by the lease: once another node has taken the
//! mailbox over, the old reader's updates change nothing and it stops.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::mail_imap_mailboxes as m;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = m)]
pub struct MailboxState {
    pub id: i64,
    pub account: String,
    pub uid_validity: Option<i64>,
    pub last_uid: i64,
    pub lease_owner: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub lease_until: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub last_ok_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub last_error_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
}

fn ensure_row(conn: &mut DbConn, account: &str, now: NaiveDateTime) -> QueryResult<()> {
    crate::with_conn!(conn, |c| diesel::insert_into(m::table)
        .values((m::account.eq(account), m::last_uid.eq(0i64), m::updated_at.eq(now)))
        .on_conflict(m::account)
        .do_nothing()
        .execute(c))?;
    Ok(())
}

pub fn get(conn: &mut DbConn, account: &str) -> QueryResult<Option<MailboxState>> {
    m::table.filter(m::account.eq(account)).select(MailboxState::as_select()).first(conn).optional()
}

/// Takes (or extends) the lease for `owner` until `until`: true when it is now theirs.
/// A lease nobody holds, an expired one and the owner's own can be taken.
pub fn acquire(
    conn: &mut DbConn,
    account: &str,
    owner: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    ensure_row(conn, account, now)?;
    let free =
        m::lease_owner.is_null().or(m::lease_until.is_null()).or(m::lease_until.lt(now)).or(m::lease_owner.eq(owner));
    let n = diesel::update(m::table.filter(m::account.eq(account)).filter(free))
        .set((m::lease_owner.eq(Some(owner)), m::lease_until.eq(Some(until))))
        .execute(conn)?;
    Ok(n == 1)
}

/// Extends a lease still held by `owner`; false when it was lost to another node.
pub fn renew(conn: &mut DbConn, account: &str, owner: &str, until: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(m::table.filter(m::account.eq(account)).filter(m::lease_owner.eq(owner)))
        .set(m::lease_until.eq(Some(until)))
        .execute(conn)?;
    Ok(n == 1)
}

/// Gives the lease back (shutdown), so another node need not wait for it to expire.
pub fn release(conn: &mut DbConn, account: &str, owner: &str) -> QueryResult<()> {
    diesel::update(m::table.filter(m::account.eq(account)).filter(m::lease_owner.eq(owner)))
        .set((m::lease_owner.eq(None::<String>), m::lease_until.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    Ok(())
}

/// The UID above which messages are new, for the mailbox's current UIDVALIDITY. A
/// changed UIDVALIDITY means every UID may now name another message: the count starts
/// again from 0 (mail already stored is recognised by ingest as a duplicate).
/// None when the lease is no longer `owner`'s.
pub fn start_validity(
    conn: &mut DbConn,
    account: &str,
    owner: &str,
    validity: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    crate::db::tx(conn, |conn| {
        let Some(row) = get(conn, account)? else {
            return Ok(None);
        };
        if row.lease_owner.as_deref() != Some(owner) {
            return Ok(None);
        }
        if row.uid_validity == Some(validity) {
            return Ok(Some(row.last_uid));
        }
        if let Some(old) = row.uid_validity {
            tracing::warn!(account, old, new = validity, "UIDVALIDITY changed; reading the whole mailbox again");
        }
        diesel::update(m::table.filter(m::id.eq(row.id)))
            .set((m::uid_validity.eq(Some(validity)), m::last_uid.eq(0i64), m::updated_at.eq(now)))
            .execute(conn)?;
        Ok(Some(0))
    })
}

/// Records that every UID up to `uid` is stored; false when the lease was lost.
pub fn record_uid(
    conn: &mut DbConn,
    account: &str,
    owner: &str,
    validity: i64,
    uid: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(
        m::table
            .filter(m::account.eq(account))
            .filter(m::lease_owner.eq(owner))
            .filter(m::uid_validity.eq(validity))
            .filter(m::last_uid.lt(uid)),
    )
    .set((m::last_uid.eq(uid), m::updated_at.eq(now)))
    .execute(conn)?;
    if n == 1 {
        return Ok(true);
    }
    // Nothing changed: either the UID was recorded already (fine) or the lease is gone.
    Ok(get(conn, account)?.is_some_and(|r| r.lease_owner.as_deref() == Some(owner) && r.uid_validity == Some(validity)))
}

/// A pass over the mailbox went through: the last error is cleared.
pub fn note_ok(conn: &mut DbConn, account: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(m::table.filter(m::account.eq(account)))
        .set((m::last_ok_at.eq(Some(now)), m::last_error.eq(None::<String>), m::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// What went wrong last (connection, login, mailbox), for the CLI and the logs.
pub fn note_error(conn: &mut DbConn, account: &str, error: &str, now: NaiveDateTime) -> QueryResult<()> {
    ensure_row(conn, account, now)?;
    diesel::update(m::table.filter(m::account.eq(account)))
        .set((m::last_error.eq(Some(error)), m::last_error_at.eq(Some(now)), m::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}
