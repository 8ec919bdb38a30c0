//! Diesel structs and every query of bank connections, transactions and handoffs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::business::models::BankAccount;
use crate::db::DbConn;
use crate::db::schema::{bank_accounts, bank_connections, businesses, link_handoffs, transaction_days, transactions};

#[derive(Queryable, Debug, Clone)]
pub struct Connection {
    pub id: i64,
    pub business_id: i64,
    pub bank_bin: String,
    pub method: String,
    pub status: String,
    pub credentials_sealed: Option<String>,
    pub tokens_sealed: Option<String>,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub token_expires_at: Option<NaiveDateTime>,
    pub oauth_state: Option<String>,
    pub external_ref: Option<String>,
    pub push_key: Option<String>,
    pub last_error: Option<String>,
    pub created_by: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = bank_connections)]
pub struct NewConnection<'a> {
    pub business_id: i64,
    pub bank_bin: &'a str,
    pub method: &'a str,
    pub status: &'a str,
    pub oauth_state: Option<&'a str>,
    pub external_ref: Option<&'a str>,
    pub push_key: Option<&'a str>,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = bank_connections)]
pub struct ConnectionChanges<'a> {
    pub status: Option<&'a str>,
    pub tokens_sealed: Option<Option<&'a str>>,
    pub token_expires_at: Option<Option<NaiveDateTime>>,
    pub oauth_state: Option<Option<&'a str>>,
    pub external_ref: Option<Option<&'a str>>,
    pub last_error: Option<Option<&'a str>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn set_credentials(conn: &mut DbConn, id: i64, sealed: &str) -> QueryResult<Connection> {
    diesel::update(bank_connections::table.find(id))
        .set(bank_connections::credentials_sealed.eq(sealed))
        .returning(bank_connections::all_columns)
        .get_result(conn)
}

pub fn insert_connection(conn: &mut DbConn, new: &NewConnection<'_>) -> QueryResult<Connection> {
    diesel::insert_into(bank_connections::table).values(new).returning(bank_connections::all_columns).get_result(conn)
}

pub fn connection(conn: &mut DbConn, id: i64) -> QueryResult<Connection> {
    bank_connections::table.find(id).select(bank_connections::all_columns).first(conn)
}

pub fn connection_of_business(conn: &mut DbConn, business_id: i64, id: i64) -> QueryResult<Connection> {
    bank_connections::table
        .filter(bank_connections::business_id.eq(business_id))
        .filter(bank_connections::id.eq(id))
        .select(bank_connections::all_columns)
        .first(conn)
}

pub fn connection_by_state(conn: &mut DbConn, state: &str) -> QueryResult<Option<Connection>> {
    bank_connections::table
        .filter(bank_connections::oauth_state.eq(state))
        .select(bank_connections::all_columns)
        .first(conn)
        .optional()
}

pub fn connection_by_push_key(conn: &mut DbConn, key: &str) -> QueryResult<Option<Connection>> {
    bank_connections::table
        .filter(bank_connections::push_key.eq(key))
        .select(bank_connections::all_columns)
        .first(conn)
        .optional()
}

pub fn update_connection(conn: &mut DbConn, id: i64, changes: &ConnectionChanges<'_>) -> QueryResult<Connection> {
    diesel::update(bank_connections::table.find(id))
        .set(changes)
        .returning(bank_connections::all_columns)
        .get_result(conn)
}

/// A linked account with its business's deleted flag (a deleted business syncs nothing).
pub fn account(conn: &mut DbConn, id: i64) -> QueryResult<BankAccount> {
    bank_accounts::table.find(id).select(bank_accounts::all_columns).first(conn)
}

pub fn accounts_of_connection(conn: &mut DbConn, connection_id: i64) -> QueryResult<Vec<BankAccount>> {
    bank_accounts::table
        .filter(bank_accounts::connection_id.eq(connection_id))
        .filter(bank_accounts::removed_at.is_null())
        .select(bank_accounts::all_columns)
        .load(conn)
}

/// The business's linked account for this bank and account number, if any (a new
/// login after "cần kết nối lại" re-attaches it instead of adding a twin).
pub fn linked_by_number(
    conn: &mut DbConn,
    business_id: i64,
    bank_bin: &str,
    number: &str,
) -> QueryResult<Option<BankAccount>> {
    bank_accounts::table
        .filter(bank_accounts::business_id.eq(business_id))
        .filter(bank_accounts::bank_bin.eq(bank_bin))
        .filter(bank_accounts::account_number.eq(number))
        .filter(bank_accounts::removed_at.is_null())
        .select(bank_accounts::all_columns)
        .first(conn)
        .optional()
}

/// Moves an account to a new connection (after a new login), keeping its history.
pub fn reattach(
    conn: &mut DbConn,
    id: i64,
    connection_id: i64,
    external_id: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(bank_accounts::table.find(id))
        .set((
            bank_accounts::connection_id.eq(connection_id),
            bank_accounts::external_id.eq(external_id),
            bank_accounts::connect_status.eq("connected"),
            bank_accounts::last_error.eq(None::<String>),
            bank_accounts::next_sync_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Linked accounts whose next sync is due (their business not deleted).
pub fn due_accounts(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<(i64, NaiveDateTime)>> {
    bank_accounts::table
        .inner_join(businesses::table)
        .filter(bank_accounts::removed_at.is_null())
        .filter(businesses::deleted_at.is_null())
        .filter(bank_accounts::next_sync_at.le(now))
        .filter(bank_accounts::method.ne("push"))
        .order(bank_accounts::next_sync_at.asc())
        .limit(limit)
        .select((bank_accounts::id, bank_accounts::next_sync_at.assume_not_null()))
        .load(conn)
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = bank_accounts)]
pub struct AccountSync<'a> {
    pub connect_status: Option<&'a str>,
    pub balance: Option<Option<i64>>,
    pub sync_cursor: Option<Option<&'a str>>,
    pub last_sync_at: Option<Option<NaiveDateTime>>,
    pub next_sync_at: Option<Option<NaiveDateTime>>,
    pub rate_limited_until: Option<Option<NaiveDateTime>>,
    pub rate_limit_source: Option<Option<&'a str>>,
    pub last_error: Option<Option<&'a str>>,
}

pub fn update_account(conn: &mut DbConn, id: i64, changes: &AccountSync<'_>) -> QueryResult<()> {
    diesel::update(bank_accounts::table.find(id)).set(changes).execute(conn)?;
    Ok(())
}

// ---- transactions

#[derive(Queryable, Debug, Clone)]
pub struct Transaction {
    pub id: i64,
    pub business_id: i64,
    pub account_id: i64,
    pub bank_tx_id: String,
    pub amount: i64,
    pub description: String,
    pub balance: Option<i64>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub occurred_at: NaiveDateTime,
    pub pending: bool,
    pub counter_account: String,
    pub counter_name: String,
    pub counter_bank_id: String,
    pub counter_bank_name: String,
    pub virtual_account: String,
    pub virtual_account_name: String,
    pub payment_channel: String,
    pub source: String,
    pub search_key: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub deleted_at: Option<NaiveDateTime>,
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = transactions)]
pub struct NewTransaction {
    pub business_id: i64,
    pub account_id: i64,
    pub bank_tx_id: String,
    pub amount: i64,
    pub description: String,
    pub balance: Option<i64>,
    pub occurred_at: NaiveDateTime,
    pub pending: bool,
    pub counter_account: String,
    pub counter_name: String,
    pub counter_bank_id: String,
    pub counter_bank_name: String,
    pub virtual_account: String,
    pub virtual_account_name: String,
    pub payment_channel: String,
    pub source: String,
    pub search_key: String,
    pub created_at: NaiveDateTime,
}

/// Inserts what is new, skipping (account, bank id) pairs already stored — tombstones
/// included. Returns (id, amount) of the rows actually inserted. Call it inside a
/// write transaction (`db::tx`).
pub fn insert_new(conn: &mut DbConn, rows: &[NewTransaction], days: &mut DayDeltas) -> QueryResult<Vec<(i64, i64)>> {
    let mut ids = Vec::with_capacity(rows.len());
    // 19 bound values a row: chunks stay far below both backends' parameter limits.
    for chunk in rows.chunks(500) {
        let mut got: Vec<(i64, i64)> = match conn {
            // Concurrent syncs of one account race here: the unique key decides.
            DbConn::Pg(c) => {
                let got: Vec<(i64, i64, i64, NaiveDateTime)> = diesel::insert_into(transactions::table)
                    .values(chunk)
                    .on_conflict((transactions::account_id, transactions::bank_tx_id))
                    .do_nothing()
                    .returning((
                        transactions::id,
                        transactions::amount,
                        transactions::business_id,
                        transactions::occurred_at,
                    ))
                    .get_results(c)?;
                got.into_iter()
                    .map(|(id, amount, business, at)| {
                        days.add(business, at, 1, amount);
                        (id, amount)
                    })
                    .collect()
            }
            // SQLite write transactions are serial (BEGIN IMMEDIATE), so the known ids
            // read here stay known; diesel's SQLite batch RETURNING fails on a conflict.
            DbConn::Sqlite(c) => {
                let mut by_account: std::collections::HashMap<i64, Vec<&str>> = Default::default();
                for r in chunk {
                    by_account.entry(r.account_id).or_default().push(&r.bank_tx_id);
                }
                let mut known = std::collections::HashSet::new();
                for (account, bank_ids) in by_account {
                    let found: Vec<String> = transactions::table
                        .filter(transactions::account_id.eq(account))
                        .filter(transactions::bank_tx_id.eq_any(bank_ids))
                        .select(transactions::bank_tx_id)
                        .load(c)?;
                    known.extend(found.into_iter().map(|b| (account, b)));
                }
                let mut seen = std::collections::HashSet::new();
                let fresh: Vec<&NewTransaction> = chunk
                    .iter()
                    .filter(|r| !known.contains(&(r.account_id, r.bank_tx_id.clone())))
                    .filter(|r| seen.insert((r.account_id, r.bank_tx_id.clone())))
                    .collect();
                if fresh.is_empty() {
                    Vec::new()
                } else {
                    // One multi-row INSERT, then the new rows read back by their keys
                    // (all of them are new: they were just checked unknown).
                    let owned: Vec<NewTransaction> = fresh.iter().map(|r| (*r).clone()).collect();
                    diesel::insert_into(transactions::table).values(&owned).execute(c)?;
                    for r in &owned {
                        days.add(r.business_id, r.occurred_at, 1, r.amount);
                    }
                    let mut got = Vec::with_capacity(owned.len());
                    let mut by_account: std::collections::HashMap<i64, Vec<&str>> = Default::default();
                    for r in &owned {
                        by_account.entry(r.account_id).or_default().push(&r.bank_tx_id);
                    }
                    for (account, bank_ids) in by_account {
                        let mut rows: Vec<(i64, i64)> = transactions::table
                            .filter(transactions::account_id.eq(account))
                            .filter(transactions::bank_tx_id.eq_any(bank_ids))
                            .select((transactions::id, transactions::amount))
                            .load(c)?;
                        got.append(&mut rows);
                    }
                    got
                }
            }
        };
        ids.append(&mut got);
    }
    Ok(ids)
}

/// Rows a business's day sums and usage counter are spread over on PostgreSQL.
const SLOTS: u32 = 16;

/// The slots this process's stores hold now, one bit each.
static LANES_BUSY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The slot every counter row of one store is written in (its usage and its day sums),
/// held until the store has committed: drop it after the transaction.
///
/// On PostgreSQL the row lock of a counter row is held until the commit, so two stores
/// of one business writing the same slot commit one after the other. Random slots
/// (two draws a store, one for the usage and one for the days) collided: 119 lock
/// waits, mostly on `business_usage`, in 20 s of `bench notify` at 200 pushes/s
/// (`log_lock_waits`); none with lanes. A lane is a slot no other store of this process holds,
/// so this node's stores never wait for each other; other nodes start at another
/// random slot and meet this one only when both run many stores at once. With every
/// slot taken, a store shares a random one, as before. SQLite has one writer: slot 0.
pub struct Lane {
    slot: i16,
    held: bool,
}

impl Lane {
    pub fn take(conn: &DbConn) -> Lane {
        use std::sync::atomic::Ordering;
        if matches!(conn, DbConn::Sqlite(_)) {
            return Lane { slot: 0, held: false };
        }
        static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let start = *START.get_or_init(|| rand::Rng::gen_range(&mut rand::thread_rng(), 0..SLOTS));
        for k in 0..SLOTS {
            let slot = (start + k) % SLOTS;
            let bit = 1u32 << slot;
            if LANES_BUSY.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
                return Lane { slot: slot as i16, held: true };
            }
        }
        Lane { slot: rand::Rng::gen_range(&mut rand::thread_rng(), 0..SLOTS) as i16, held: false }
    }

    pub fn slot(&self) -> i16 {
        self.slot
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.held {
            LANES_BUSY.fetch_and(!(1u32 << self.slot), std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// Changes to `transaction_days` (count, money in, money out), summed before they are
/// written. Every new transaction of a business on one day moves the same row, so on
/// PostgreSQL concurrent stores wait for each other there until they commit: a store
/// applies them last, just before its commit, in key order (no two stores lock two
/// days in opposite orders).
#[derive(Default)]
pub struct DayDeltas(std::collections::BTreeMap<(i64, chrono::NaiveDate), (i64, i64, i64)>);

impl DayDeltas {
    /// `n` rows of `amount` on the local day of `at` (n = -1 takes one away).
    fn add(&mut self, business_id: i64, at: NaiveDateTime, n: i64, amount: i64) {
        let d = self.0.entry((business_id, crate::fmt::local_date(at))).or_default();
        d.0 += n;
        if amount > 0 {
            d.1 += n * amount;
        } else {
            d.2 += n * amount;
        }
    }

    /// One upsert a day (`n = n + delta`: concurrent writers add up on PostgreSQL), all
    /// in the store's slot of the day's rows.
    pub fn apply(self, conn: &mut DbConn, lane: &Lane) -> QueryResult<()> {
        use transaction_days::dsl as td;
        let slot = lane.slot();
        for ((business_id, day), (n, money_in, money_out)) in self.0.into_iter().filter(|(_, d)| *d != (0, 0, 0)) {
            let row = (
                td::business_id.eq(business_id),
                td::day.eq(day),
                td::slot.eq(slot),
                td::n.eq(n),
                td::money_in.eq(money_in),
                td::money_out.eq(money_out),
            );
            let add = (
                td::n.eq(td::n + n),
                td::money_in.eq(td::money_in + money_in),
                td::money_out.eq(td::money_out + money_out),
            );
            match conn {
                DbConn::Pg(c) => diesel::insert_into(td::transaction_days)
                    .values(row)
                    .on_conflict((td::business_id, td::day, td::slot))
                    .do_update()
                    .set(add)
                    .execute(c)?,
                DbConn::Sqlite(c) => diesel::insert_into(td::transaction_days)
                    .values(row)
                    .on_conflict((td::business_id, td::day, td::slot))
                    .do_update()
                    .set(add)
                    .execute(c)?,
            };
        }
        Ok(())
    }
}

/// A pending transaction the bank re-issued under a new id: the stored row takes the
/// new id and the posted values. False when no row had the old id.
pub fn replace_pending(
    conn: &mut DbConn,
    account_id: i64,
    old_id: &str,
    new: &NewTransaction,
    days: &mut DayDeltas,
) -> QueryResult<bool> {
    let before: Option<(i64, NaiveDateTime, i64, Option<NaiveDateTime>)> = transactions::table
        .filter(transactions::account_id.eq(account_id))
        .filter(transactions::bank_tx_id.eq(old_id))
        .select((transactions::business_id, transactions::occurred_at, transactions::amount, transactions::deleted_at))
        .first(conn)
        .optional()?;
    let n = diesel::update(
        transactions::table.filter(transactions::account_id.eq(account_id)).filter(transactions::bank_tx_id.eq(old_id)),
    )
    .set((
        transactions::bank_tx_id.eq(&new.bank_tx_id),
        transactions::amount.eq(new.amount),
        transactions::description.eq(&new.description),
        transactions::balance.eq(new.balance),
        transactions::occurred_at.eq(new.occurred_at),
        transactions::pending.eq(new.pending),
        transactions::search_key.eq(&new.search_key),
    ))
    .execute(conn)?;
    // The posted time may fall on another day than the pending one, the amount differ.
    if let (1, Some((business, was, amount, None))) = (n, before) {
        days.add(business, was, -1, amount);
        days.add(business, new.occurred_at, 1, new.amount);
    }
    Ok(n == 1)
}

/// Whether a bank id is already stored for the account (tombstones included).
pub fn known(conn: &mut DbConn, account_id: i64, bank_tx_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        transactions::table
            .filter(transactions::account_id.eq(account_id))
            .filter(transactions::bank_tx_id.eq(bank_tx_id)),
    ))
    .get_result(conn)
}

/// What the transactions page filters on.
#[derive(Debug, Clone, Default)]
pub struct TxFilter {
    pub business_id: i64,
    pub account_id: Option<i64>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    /// Some(true) money in, Some(false) money out.
    pub income: Option<bool>,
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    /// Folded (lower case, no diacritics).
    pub text: Option<String>,
}

impl TxFilter {
    /// Only the business and whole local days: the per-day sums answer the totals.
    pub fn by_days_only(&self) -> bool {
        self.account_id.is_none()
            && self.income.is_none()
            && self.min_amount.is_none()
            && self.max_amount.is_none()
            && self.text.is_none()
    }
}

/// The filter's query. A macro, not a function, so that the backend is the one of the
/// connection it runs on: the reads run on the backend's own connection (see
/// [`crate::with_conn`]), and the transactions list and `GET /v2/transactions` are
/// among the busiest reads there are.
macro_rules! filtered {
    ($f:expr) => {{
        let f: &TxFilter = $f;
        let mut q = transactions::table
            .filter(transactions::business_id.eq(f.business_id))
            .filter(transactions::deleted_at.is_null())
            .into_boxed();
        if let Some(a) = f.account_id {
            q = q.filter(transactions::account_id.eq(a));
        }
        if let Some(t) = f.from {
            q = q.filter(transactions::occurred_at.ge(t));
        }
        if let Some(t) = f.to {
            q = q.filter(transactions::occurred_at.lt(t));
        }
        match f.income {
            Some(true) => q = q.filter(transactions::amount.gt(0)),
            Some(false) => q = q.filter(transactions::amount.lt(0)),
            None => {}
        }
        // Amount bounds apply to the size of the movement, in or out.
        if let Some(min) = f.min_amount {
            q = q.filter(transactions::amount.ge(min).or(transactions::amount.le(-min)));
        }
        if let Some(max) = f.max_amount {
            q = q.filter(transactions::amount.le(max).and(transactions::amount.ge(-max)));
        }
        if let Some(text) = &f.text {
            let like = format!("%{}%", text.replace(['%', '_', '\\'], ""));
            q = q.filter(transactions::search_key.like(like));
        }
        q
    }};
}

pub fn page(conn: &mut DbConn, f: &TxFilter, offset: i64, limit: i64) -> QueryResult<Vec<Transaction>> {
    crate::with_conn!(conn, |c| filtered!(f)
        .order((transactions::occurred_at.desc(), transactions::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(transactions::all_columns)
        .load(c))
}

/// A page in time order, oldest first or newest first (the API's `sort`).
pub fn page_sorted(
    conn: &mut DbConn,
    f: &TxFilter,
    offset: i64,
    limit: i64,
    desc: bool,
) -> QueryResult<Vec<Transaction>> {
    crate::with_conn!(conn, |c| {
        let q = filtered!(f).offset(offset).limit(limit).select(transactions::all_columns);
        if desc {
            q.order((transactions::occurred_at.desc(), transactions::id.desc())).load(c)
        } else {
            q.order((transactions::occurred_at.asc(), transactions::id.asc())).load(c)
        }
    })
}

/// How many rows match.
pub fn count(conn: &mut DbConn, f: &TxFilter) -> QueryResult<i64> {
    crate::with_conn!(conn, |c| filtered!(f).count().get_result(c))
}

/// Every matching row, oldest first, a batch at a time (exports).
pub fn batch_after(conn: &mut DbConn, f: &TxFilter, after_id: i64, limit: i64) -> QueryResult<Vec<Transaction>> {
    crate::with_conn!(conn, |c| filtered!(f)
        .filter(transactions::id.gt(after_id))
        .order(transactions::id.asc())
        .limit(limit)
        .select(transactions::all_columns)
        .load(c))
}

/// (count, total in, total out) of the matching rows, summed by the database in one
/// pass (over the index alone when only the time and the business are filtered).
pub fn totals(conn: &mut DbConn, f: &TxFilter) -> QueryResult<(i64, i64, i64)> {
    use diesel::dsl::{count_star, sql};
    use diesel::sql_types::BigInt;
    // SUM(bigint) is NUMERIC on PostgreSQL: cast back so both backends answer BIGINT.
    crate::with_conn!(conn, |c| filtered!(f)
        .select((
            count_star(),
            sql::<BigInt>("CAST(COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS BIGINT)"),
            sql::<BigInt>("CAST(COALESCE(SUM(CASE WHEN amount < 0 THEN amount ELSE 0 END), 0) AS BIGINT)"),
        ))
        .first(c))
}

/// (money in, money out) of the matching rows in each [start, end) range: the per-day
/// chart asks one small indexed aggregate per day instead of loading rows.
pub fn range_totals(
    conn: &mut DbConn,
    f: &TxFilter,
    ranges: &[(NaiveDateTime, NaiveDateTime)],
) -> QueryResult<Vec<(i64, i64)>> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let mut out = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        let day = TxFilter {
            from: Some(f.from.map_or(*start, |x| x.max(*start))),
            to: Some(f.to.map_or(*end, |x| x.min(*end))),
            ..f.clone()
        };
        let row: (i64, i64) = crate::with_conn!(conn, |c| filtered!(&day)
            .select((
                sql::<BigInt>("CAST(COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS BIGINT)"),
                sql::<BigInt>("CAST(COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS BIGINT)"),
            ))
            .first(c)?);
        out.push(row);
    }
    Ok(out)
}

pub fn transaction(conn: &mut DbConn, business_id: i64, id: i64) -> QueryResult<Transaction> {
    transactions::table
        .filter(transactions::business_id.eq(business_id))
        .filter(transactions::id.eq(id))
        .filter(transactions::deleted_at.is_null())
        .select(transactions::all_columns)
        .first(conn)
}

/// A transaction by id, deleted or not (the notifier decides).
pub fn transaction_any(conn: &mut DbConn, id: i64) -> QueryResult<Transaction> {
    transactions::table.find(id).select(transactions::all_columns).first(conn)
}

/// Marks a transaction deleted; the row stays so a re-sync never brings it back.
pub fn tombstone(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(transactions::table.find(id).filter(transactions::deleted_at.is_null()))
        .set(transactions::deleted_at.eq(at))
        .execute(conn)?;
    if n == 1 {
        let (business, when, amount): (i64, NaiveDateTime, i64) = transactions::table
            .find(id)
            .select((transactions::business_id, transactions::occurred_at, transactions::amount))
            .first(conn)?;
        let mut days = DayDeltas::default();
        days.add(business, when, -1, amount);
        // Held to the end of the caller's transaction at best; a shared slot only waits.
        days.apply(conn, &Lane::take(conn))?;
    }
    Ok(n == 1)
}

/// (day, count, money in, money out as a negative sum) of a business's live
/// transactions per local day, days `from..=to` (open ends: every day), oldest first.
pub fn day_totals(
    conn: &mut DbConn,
    business_id: i64,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> QueryResult<Vec<(chrono::NaiveDate, i64, i64, i64)>> {
    use transaction_days::dsl as td;
    let slots: Vec<(chrono::NaiveDate, i64, i64, i64)> = crate::with_conn!(conn, |c| {
        let mut q = td::transaction_days.filter(td::business_id.eq(business_id)).into_boxed();
        if let Some(d) = from {
            q = q.filter(td::day.ge(d));
        }
        if let Some(d) = to {
            q = q.filter(td::day.le(d));
        }
        q.order(td::day.asc()).select((td::day, td::n, td::money_in, td::money_out)).load(c)?
    });
    Ok(by_day(slots))
}

/// A day's slots summed (rows come ordered by day); days left with no transaction are
/// dropped. One slot may be negative: a deletion counted in another slot than its insert.
fn by_day(slots: Vec<(chrono::NaiveDate, i64, i64, i64)>) -> Vec<(chrono::NaiveDate, i64, i64, i64)> {
    let mut days: Vec<(chrono::NaiveDate, i64, i64, i64)> = Vec::new();
    for (day, n, money_in, money_out) in slots {
        match days.last_mut() {
            Some(last) if last.0 == day => {
                last.1 += n;
                last.2 += money_in;
                last.3 += money_out;
            }
            _ => days.push((day, n, money_in, money_out)),
        }
    }
    days.retain(|d| d.1 > 0);
    days
}

/// A business's live transactions of local days `from..=to`: the total, and one page
/// in time order. The total is a sum over `transaction_days`; the page starts at the
/// day holding its first row, so only that day's rows before it are skipped.
pub fn page_by_days(
    conn: &mut DbConn,
    business_id: i64,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    offset: i64,
    limit: i64,
    desc: bool,
) -> QueryResult<(i64, Vec<Transaction>)> {
    let mut days: Vec<(chrono::NaiveDate, i64)> =
        day_totals(conn, business_id, Some(from), Some(to))?.into_iter().map(|(day, n, _, _)| (day, n)).collect();
    let total: i64 = days.iter().map(|(_, n)| n).sum();
    if desc {
        days.reverse();
    }
    let mut skip = offset;
    let mut start = None;
    for (day, n) in &days {
        if skip < *n {
            start = Some(*day);
            break;
        }
        skip -= n;
    }
    let Some(start) = start else { return Ok((total, Vec::new())) };
    let next_day = |d: chrono::NaiveDate| d.succ_opt().unwrap_or(d);
    let f = TxFilter {
        business_id,
        from: Some(crate::fmt::local_midnight_utc(if desc { from } else { start })),
        to: Some(crate::fmt::local_midnight_utc(next_day(if desc { start } else { to }))),
        ..Default::default()
    };
    Ok((total, page_sorted(conn, &f, skip, limit, desc)?))
}

// ---- phone handoffs

pub fn insert_handoff(
    conn: &mut DbConn,
    business_id: i64,
    user_id: i64,
    bank_bin: &str,
    token_hash: &str,
    expires_at: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(link_handoffs::table)
        .values((
            link_handoffs::business_id.eq(business_id),
            link_handoffs::user_id.eq(user_id),
            link_handoffs::bank_bin.eq(bank_bin),
            link_handoffs::token_hash.eq(token_hash),
            link_handoffs::expires_at.eq(expires_at),
            link_handoffs::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The handoff of `user_id` with this hash, when unused and fresh: (id, business, bank).
pub fn handoff_by_hash(
    conn: &mut DbConn,
    token_hash: &str,
    user_id: i64,
    at: NaiveDateTime,
) -> QueryResult<Option<(i64, i64, String)>> {
    link_handoffs::table
        .filter(link_handoffs::token_hash.eq(token_hash))
        .filter(link_handoffs::user_id.eq(user_id))
        .filter(link_handoffs::used_at.is_null())
        .filter(link_handoffs::expires_at.gt(at))
        .select((link_handoffs::id, link_handoffs::business_id, link_handoffs::bank_bin))
        .first(conn)
        .optional()
}

/// Rewrites a handoff's hash found under an old secret key (see `secrets::hashed`).
pub fn rehash_handoff(conn: &mut DbConn, id: i64, old: &str, new: &str) -> QueryResult<()> {
    crate::rehash!(conn, link_handoffs, token_hash, id, old, new)
}

/// Consumes a handoff; false when a concurrent use won.
pub fn use_handoff(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(link_handoffs::table.find(id).filter(link_handoffs::used_at.is_null()))
        .set(link_handoffs::used_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}
