//! Diesel structs and every query of the hub desk: merchants, points, requests,
//! confirmations and the request timeline.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{confirmations, merchants, points, request_counts, request_events, request_points, requests};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = merchants)]
pub struct Merchant {
    pub id: i64,
    pub name: String,
    pub contact_name: String,
    pub phone: String,
    pub email: String,
    pub search_key: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = points)]
pub struct Point {
    pub id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub address: String,
    pub contact_name: String,
    pub phone: String,
    pub pos_parent: String,
    pub pos_id: String,
    pub point_code: String,
    pub search_key: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
}

pub fn merchant(conn: &mut DbConn, id: i64) -> QueryResult<Merchant> {
    crate::with_conn!(conn, |c| merchants::table.find(id).select(Merchant::as_select()).first(c))
}

pub fn merchant_by_key(conn: &mut DbConn, key: &str) -> QueryResult<Option<Merchant>> {
    merchants::table.filter(merchants::search_key.eq(key)).select(Merchant::as_select()).first(conn).optional()
}

/// The merchant with this folded name, created if there is none. The insert yields to
/// a concurrent one under the unique key (two people opening requests for the same
/// new merchant at once), and the row that won is returned to both.
pub fn ensure_merchant(conn: &mut DbConn, name: &str, contact: &str, phone: &str, key: &str) -> QueryResult<i64> {
    let t = crate::db::now();
    let row = (
        merchants::name.eq(name),
        merchants::contact_name.eq(contact),
        merchants::phone.eq(phone),
        merchants::phone_key.eq(phone_key(phone)),
        merchants::search_key.eq(key),
        merchants::created_at.eq(t),
        merchants::updated_at.eq(t),
    );
    let inserted: Option<i64> = crate::with_conn!(conn, |c| diesel::insert_into(merchants::table)
        .values(row)
        .on_conflict(merchants::search_key)
        .do_nothing()
        .returning(merchants::id)
        .get_result(c)
        .optional())?;
    match inserted {
        Some(id) => Ok(id),
        None => merchants::table.filter(merchants::search_key.eq(key)).select(merchants::id).first(conn),
    }
}

/// Merchants whose folded name contains `q`, with their point counts; one page.
pub fn search_merchants(
    conn: &mut DbConn,
    q: &str,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<(Merchant, i64)>, i64)> {
    let key = q.replace(['%', '_'], "");
    // No search: every merchant, its page read in the order of `merchants_name_idx`. A
    // `LIKE '%%'` kept every row too, but counted and sorted them all on each request
    // (two thirds of the page's instructions at 300 merchants, callgrind, session 25).
    let searched = |like: String| {
        let mut q = merchants::table.into_boxed();
        if !key.is_empty() {
            q = q.filter(merchants::search_key.like(like));
        }
        q
    };
    let total = searched(format!("%{key}%")).count().get_result(conn)?;
    let rows: Vec<Merchant> = searched(format!("%{key}%"))
        .order((merchants::name.asc(), merchants::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(Merchant::as_select())
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let counts: Vec<(i64, i64)> = points::table
        .filter(crate::db::in_any(points::merchant_id, ids))
        .group_by(points::merchant_id)
        .select((points::merchant_id, diesel::dsl::count_star()))
        .load(conn)?;
    let out = rows
        .into_iter()
        .map(|m| {
            let n = counts.iter().find(|c| c.0 == m.id).map(|c| c.1).unwrap_or(0);
            (m, n)
        })
        .collect();
    Ok((out, total))
}

pub fn point(conn: &mut DbConn, id: i64) -> QueryResult<Point> {
    points::table.find(id).select(Point::as_select()).first(conn)
}

pub fn point_by_key(conn: &mut DbConn, merchant_id: i64, key: &str) -> QueryResult<Option<Point>> {
    points::table
        .filter(points::merchant_id.eq(merchant_id))
        .filter(points::search_key.eq(key))
        .select(Point::as_select())
        .first(conn)
        .optional()
}

pub fn points_of(conn: &mut DbConn, merchant_id: i64) -> QueryResult<Vec<Point>> {
    points::table
        .filter(points::merchant_id.eq(merchant_id))
        .order(points::name.asc())
        .select(Point::as_select())
        .load(conn)
}

pub struct NewPoint<'a> {
    pub merchant_id: i64,
    pub name: &'a str,
    pub address: &'a str,
    pub contact_name: &'a str,
    pub phone: &'a str,
    pub key: &'a str,
}

/// The merchant's point with this folded name, created if there is none; as
/// [`ensure_merchant`], a concurrent insert of the same point yields one row.
pub fn ensure_point(conn: &mut DbConn, p: &NewPoint<'_>) -> QueryResult<i64> {
    let t = crate::db::now();
    let row = (
        points::merchant_id.eq(p.merchant_id),
        points::name.eq(p.name),
        points::address.eq(p.address),
        points::contact_name.eq(p.contact_name),
        points::phone.eq(p.phone),
        points::search_key.eq(p.key),
        points::created_at.eq(t),
        points::updated_at.eq(t),
    );
    let inserted: Option<i64> = crate::with_conn!(conn, |c| diesel::insert_into(points::table)
        .values(row)
        .on_conflict((points::merchant_id, points::search_key))
        .do_nothing()
        .returning(points::id)
        .get_result(c)
        .optional())?;
    match inserted {
        Some(id) => Ok(id),
        None => points::table
            .filter(points::merchant_id.eq(p.merchant_id))
            .filter(points::search_key.eq(p.key))
            .select(points::id)
            .first(conn),
    }
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = requests)]
pub struct Request {
    pub id: i64,
    pub partner_id: i64,
    pub merchant_id: i64,
    pub state: String,
    pub version: i64,
    pub opening_mail_id: Option<i64>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub opened_on: NaiveDateTime,
    pub assignee_id: Option<i64>,
    pub closed_reason: Option<String>,
    pub created_by: Option<i64>,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub state_since: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub updated_at: NaiveDateTime,
}

pub struct NewRequest {
    pub partner_id: i64,
    pub merchant_id: i64,
    pub opening_mail_id: Option<i64>,
    pub opened_on: NaiveDateTime,
    pub created_by: Option<i64>,
}

pub fn insert_request(conn: &mut DbConn, r: &NewRequest) -> QueryResult<i64> {
    let t = crate::db::now();
    diesel::insert_into(requests::table)
        .values((
            requests::partner_id.eq(r.partner_id),
            requests::merchant_id.eq(r.merchant_id),
            requests::state.eq("received"),
            requests::opening_mail_id.eq(r.opening_mail_id),
            requests::opened_on.eq(r.opened_on),
            requests::assignee_id.eq(r.created_by),
            requests::created_by.eq(r.created_by),
            requests::state_since.eq(t),
            requests::created_at.eq(t),
            requests::updated_at.eq(t),
        ))
        .returning(requests::id)
        .get_result(conn)
}

pub fn request(conn: &mut DbConn, id: i64) -> QueryResult<Request> {
    crate::with_conn!(conn, |c| requests::table.find(id).select(Request::as_select()).first(c))
}

/// Moves the state only if nobody moved it since `version` was read; returns whether
/// this call won.
pub fn move_state(
    conn: &mut DbConn,
    id: i64,
    version: i64,
    to: &str,
    reason: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(requests::table.filter(requests::id.eq(id)).filter(requests::version.eq(version)))
        .set((
            requests::state.eq(to),
            requests::version.eq(version + 1),
            requests::closed_reason.eq(reason),
            requests::state_since.eq(at),
            requests::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn link_point(conn: &mut DbConn, request_id: i64, point_id: i64) -> QueryResult<()> {
    diesel::insert_into(request_points::table)
        .values((request_points::request_id.eq(request_id), request_points::point_id.eq(point_id)))
        .execute(conn)?;
    Ok(())
}

pub fn request_point_list(conn: &mut DbConn, request_id: i64) -> QueryResult<Vec<Point>> {
    crate::with_conn!(conn, |c| request_points::table
        .inner_join(points::table)
        .filter(request_points::request_id.eq(request_id))
        .order(points::name.asc())
        .select(Point::as_select())
        .load(c))
}

/// A phone number as digits only: "0912.345.678" and "0912 345 678" look alike.
pub fn phone_key(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

diesel::define_sql_function!(
    /// SQL `lower`, the same on both backends for ASCII text.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// The LIKE patterns of a search box's text.
#[derive(Debug, Clone)]
pub struct SearchPatterns {
    /// Case and diacritics folded, for names ("da nang" finds "Đà Nẵng").
    pub folded: String,
    /// Lower case, for PYC numbers, POS IDs and point codes (ASCII codes, so SQL
    /// `lower` agrees on both backends).
    pub code: String,
    /// Digits, for phone numbers; a pattern no phone matches when there are too few.
    pub phone: String,
}

impl SearchPatterns {
    pub fn of(q: &str) -> Option<Self> {
        let q = q.trim();
        if q.is_empty() {
            return None;
        }
        // Wildcards and the escape character typed by a person are dropped: a
        // literal search, and the same meaning on SQLite (no escape) and PostgreSQL.
        let clean = |s: String| s.replace(['%', '_', '\\'], "");
        let digits = phone_key(q);
        Some(SearchPatterns {
            folded: format!("%{}%", clean(crate::mail::inbound::classify::fold(q))),
            code: format!("%{}%", clean(q.to_lowercase())),
            // A few digits are in every phone number: a search this short is a name or a code.
            phone: if digits.len() >= 4 { format!("%{digits}%") } else { "-".into() },
        })
    }
}

/// The search condition on an expression holding a request id: merchant or point
/// name, merchant phone, PYC number, POS ID or point code. A macro because the same
/// condition serves the request list (`requests::id`) and the PYC list
/// (`pycs::request_id`), and boxed subqueries do not work across diesel's two backends.
/// `m => expr` says how the row matches a set of merchant ids `m`, `c => expr` how it
/// matches the request ids `c` of PYCs found by code (a PYC row tests its own columns).
#[macro_export]
macro_rules! request_search {
    ($p:expr, $request_id:expr, $by_merchant:ident => $merchant_match:expr, $by_pyc:ident => $pyc_match:expr) => {{
        let ($by_merchant, $by_pyc, by_point) = $crate::search_sources!($p);
        $merchant_match.or($pyc_match).or($request_id.eq_any(by_point))
    }};
}

/// The three selects a search matches in: merchant ids (name or phone), request ids of
/// PYCs (number, POS ID, point code) and request ids of points (name, POS ID, code).
#[macro_export]
macro_rules! search_sources {
    ($p:expr) => {{
        use $crate::db::schema::{merchants, points, pycs, request_points};
        use $crate::hub::models::lower;
        let p: &$crate::hub::models::SearchPatterns = $p;
        (
            merchants::table
                .select(merchants::id)
                .filter(merchants::search_key.like(p.folded.clone()).or(merchants::phone_key.like(p.phone.clone()))),
            pycs::table.select(pycs::request_id).filter(
                lower(pycs::number)
                    .like(p.code.clone())
                    .or(lower(pycs::pos_id).like(p.code.clone()))
                    .or(lower(pycs::point_code).like(p.code.clone())),
            ),
            request_points::table.inner_join(points::table).select(request_points::request_id).filter(
                points::search_key
                    .like(p.folded.clone())
                    .or(lower(points::pos_id).like(p.code.clone()))
                    .or(lower(points::point_code).like(p.code.clone())),
            ),
        )
    }};
}

/// What a search matched, looked up before the request query: the requests are then
/// read through their merchant and primary-key indexes, instead of every request in
/// waiting order being tested against the matching sets (twice: count and page).
///
/// A broad search (a common syllable: "pho" names one merchant in eight) matches
/// thousands. Those ids are tested on the rows the other filters find ([`db::in_many`]):
/// a seek per merchant read every one of their requests, and without the ids the
/// merchants were scanned three times a page (the lookup, the count, the page).
///
/// [`db::in_many`]: crate::db::in_many
#[derive(Debug, Clone)]
pub struct Found {
    merchants: Vec<i64>,
    requests: Vec<i64>,
}

/// Up to this many ids, each is looked up through its index.
const FOUND_NARROW: usize = 2_000;
/// Above this many a search is as broad as the list itself (a letter): the ids are not
/// held, and each request is tested against the subqueries instead.
const FOUND_MAX: usize = 50_000;

impl Found {
    pub fn of(conn: &mut DbConn, p: &SearchPatterns) -> QueryResult<Option<Found>> {
        let (by_merchant, by_pyc, by_point) = crate::search_sources!(p);
        let cap = FOUND_MAX as i64 + 1;
        let merchants: Vec<i64> = by_merchant.limit(cap).load(conn)?;
        let mut requests: Vec<i64> = by_pyc.limit(cap).load(conn)?;
        if merchants.len() > FOUND_MAX || requests.len() > FOUND_MAX {
            return Ok(None);
        }
        requests.extend(by_point.limit(cap).load::<i64>(conn)?);
        requests.sort_unstable();
        requests.dedup();
        Ok((requests.len() <= FOUND_MAX).then_some(Found { merchants, requests }))
    }

    fn is_narrow(&self) -> bool {
        self.merchants.len() + self.requests.len() <= FOUND_NARROW
    }
}

/// Filters of the request list; empty fields do not filter.
#[derive(Debug, Default, Clone)]
pub struct RequestFilter {
    pub states: Vec<String>,
    pub partner_id: Option<i64>,
    /// What the person typed in the search box (see [`search_cond`]).
    pub search: Option<String>,
    pub assignee_id: Option<i64>,
    pub older_than: Option<NaiveDateTime>,
    /// Only requests that entered one of these states before its time: (state, cutoff).
    pub overdue: Option<Vec<(String, NaiveDateTime)>>,
}

type Cond<DB> = Box<dyn diesel::BoxableExpression<requests::table, DB, SqlType = diesel::sql_types::Bool>>;

/// The filter's query. A macro, so that its backend is the one of the connection it
/// runs on, where diesel writes a boxed query's text once a run, not three times (see
/// [`crate::with_conn`]).
macro_rules! filtered {
    ($f:expr, $found:expr) => {{
        let (f, found): (&RequestFilter, Option<&Found>) = ($f, $found);
        let mut q = requests::table.into_boxed();
        match f.states.as_slice() {
            [] => {}
            // One state (a dashboard cell, a tab) reads its index in waiting order, with no
            // sort; written as `IN`, even a single state was planned as a set and sorted.
            [one] => q = q.filter(requests::state.eq(one.clone())),
            many => q = q.filter(crate::db::in_any(requests::state, many.to_vec())),
        }
        if let Some(p) = f.partner_id {
            q = q.filter(requests::partner_id.eq(p));
        }
        if let Some(a) = f.assignee_id {
            q = q.filter(requests::assignee_id.eq(a));
        }
        if let Some(t) = f.older_than {
            q = q.filter(requests::state_since.lt(t));
        }
        if let Some(cutoffs) = &f.overdue {
            // state = s1 AND state_since < t1 OR state = s2 AND …; no thresholds, no rows.
            let cond = cutoffs.iter().fold(None::<Cond<_>>, |acc, (s, t)| {
                let one: Cond<_> = Box::new(requests::state.eq(s.clone()).and(requests::state_since.lt(*t)));
                Some(match acc {
                    Some(a) => Box::new(a.or(one)),
                    None => one,
                })
            });
            q = match cond {
                Some(c) => q.filter(c),
                None => q.filter(requests::id.ne(requests::id)),
            };
        }
        if let Some(found) = found.filter(|f| f.is_narrow()) {
            q = q.filter(
                crate::db::in_any(requests::merchant_id, found.merchants.clone())
                    .or(crate::db::in_any(requests::id, found.requests.clone())),
            );
        } else if let Some(found) = found {
            q = q.filter(
                crate::db::in_many(requests::merchant_id, found.merchants.clone())
                    .or(crate::db::in_many(requests::id, found.requests.clone())),
            );
        } else if let Some(p) = f.search.as_deref().and_then(SearchPatterns::of) {
            q = q.filter(crate::request_search!(
                &p,
                requests::id,
                m => requests::merchant_id.eq_any(m),
                c => requests::id.eq_any(c)
            ));
        }
        q
    }};
}

/// A page of the filter in waiting order, selecting `$select`, and the filter's total.
macro_rules! page_of {
    ($conn:expr, $f:expr, $offset:expr, $limit:expr, $select:expr) => {{
        let (conn, f, offset, limit): (&mut DbConn, &RequestFilter, i64, i64) = ($conn, $f, $offset, $limit);
        let found = found(conn, f)?;
        let kept = kept_count(conn, f)?;
        crate::with_conn!(conn, |c| {
            let total = match kept {
                Some(n) => n,
                None => filtered!(f, found.as_ref()).count().get_result(c)?,
            };
            let rows = filtered!(f, found.as_ref())
                .order((requests::state_since.asc(), requests::id.asc()))
                .offset(offset)
                .limit(limit)
                .select($select)
                .load(c)?;
            Ok((rows, total))
        })
    }};
}

/// Whole requests of the filter (the morning digest), and its total.
pub fn list_requests(
    conn: &mut DbConn,
    f: &RequestFilter,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Request>, i64)> {
    page_of!(conn, f, offset, limit, Request::as_select())
}

/// A request as the lists show it, with what they say beside it read in the same
/// statement: its merchant's name and whether its live confirmations are in. Whole
/// rows (thirteen columns, four timestamps) and two more statements for the names and
/// the confirmations were half of the request list's instructions (callgrind, session 25).
#[derive(Queryable, Debug, Clone)]
pub struct Listed {
    pub id: i64,
    pub partner_id: i64,
    pub state: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub state_since: NaiveDateTime,
    pub merchant: Option<String>,
    /// Only asked of a request in B1 (the only state that waits for them); false otherwise.
    pub merchant_confirmed: bool,
    pub leader_confirmed: bool,
}

type ListedColumns = (
    requests::id,
    requests::partner_id,
    requests::state,
    requests::state_since,
    crate::db::StaticSql<diesel::sql_types::Nullable<diesel::sql_types::Text>>,
    crate::db::StaticSql<diesel::sql_types::Bool>,
    crate::db::StaticSql<diesel::sql_types::Bool>,
);

/// Correlated subqueries, the same text on both databases: each is an index lookup
/// per listed row (`merchants` by id, `confirmations (request_id)`).
fn listed_columns() -> ListedColumns {
    use super::service::{LEADER, MERCHANT};
    use crate::db::static_sql;
    use std::sync::LazyLock;
    fn confirmed(kind: &str) -> String {
        format!(
            "CASE WHEN requests.state = '{}' THEN EXISTS (SELECT 1 FROM confirmations \
             WHERE confirmations.request_id = requests.id AND confirmations.kind = '{kind}' \
             AND confirmations.revoked_at IS NULL) ELSE FALSE END",
            super::state::State::Received.code()
        )
    }
    static BY_MERCHANT: LazyLock<String> = LazyLock::new(|| confirmed(MERCHANT));
    static BY_LEADER: LazyLock<String> = LazyLock::new(|| confirmed(LEADER));
    (
        requests::id,
        requests::partner_id,
        requests::state,
        requests::state_since,
        static_sql("(SELECT merchants.name FROM merchants WHERE merchants.id = requests.merchant_id)"),
        static_sql(BY_MERCHANT.as_str()),
        static_sql(BY_LEADER.as_str()),
    )
}

/// The filter's page as the lists show it, and its total.
pub fn list_page(conn: &mut DbConn, f: &RequestFilter, offset: i64, limit: i64) -> QueryResult<(Vec<Listed>, i64)> {
    page_of!(conn, f, offset, limit, listed_columns())
}

/// The next `limit` requests of the filter after id `after` (exports go by id).
pub fn requests_after(conn: &mut DbConn, f: &RequestFilter, after: i64, limit: i64) -> QueryResult<Vec<Request>> {
    let found = found(conn, f)?;
    crate::with_conn!(conn, |c| filtered!(f, found.as_ref())
        .filter(requests::id.gt(after))
        .order(requests::id.asc())
        .limit(limit)
        .select(Request::as_select())
        .load(c))
}

/// How many requests of one partner are in one state, and since when the oldest waits.
#[derive(QueryableByName, Debug, Clone)]
pub struct StateCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub state: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub partner_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub count: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub oldest: Option<NaiveDateTime>,
}

/// The filter's search looked up ahead, when it is narrow enough (see [`Found`]).
fn found(conn: &mut DbConn, f: &RequestFilter) -> QueryResult<Option<Found>> {
    match f.search.as_deref().and_then(SearchPatterns::of) {
        Some(p) => Found::of(conn, &p),
        None => Ok(None),
    }
}

/// The total of a filter that only names states and a partner, from the kept counts
/// (`request_counts`, maintained by triggers); `None` when the filter needs the rows.
fn kept_count(conn: &mut DbConn, f: &RequestFilter) -> QueryResult<Option<i64>> {
    let searching = f.search.as_deref().and_then(SearchPatterns::of).is_some();
    if searching || f.assignee_id.is_some() || f.older_than.is_some() || f.overdue.is_some() {
        return Ok(None);
    }
    let counts: Vec<i64> = crate::with_conn!(conn, |c| {
        let mut q = request_counts::table.select(request_counts::n).into_boxed();
        if !f.states.is_empty() {
            q = q.filter(crate::db::in_any(request_counts::state, f.states.clone()));
        }
        if let Some(p) = f.partner_id {
            q = q.filter(request_counts::partner_id.eq(p));
        }
        q.load(c)?
    });
    Ok(Some(counts.into_iter().sum()))
}

/// Open requests per (state, partner), for the dashboard. The counts are kept
/// (`request_counts`); the oldest wait of each non-empty cell is one seek in the
/// (state, partner_id, state_since) index, so neither grows with the requests. One
/// statement of one text, kept prepared: a statement per cell (each built, bound and
/// run under its own read lock) was 41% of the page's samples with 12 cells (`perf`,
/// issue 17).
pub fn counts_by_state_and_partner(conn: &mut DbConn) -> QueryResult<Vec<StateCount>> {
    use super::state::State;
    let [a, b, c] = [State::Invoiced, State::Rejected, State::Cancelled].map(State::code);
    let sql = format!(
        "SELECT c.state, c.partner_id, c.n AS count, \
           (SELECT MIN(r.state_since) FROM requests r WHERE r.state = c.state AND r.partner_id = c.partner_id) AS oldest \
         FROM request_counts c WHERE c.n > 0 AND c.state NOT IN ('{a}', '{b}', '{c}')"
    );
    crate::db::cached(diesel::sql_query(sql)).load(conn)
}

/// The names of these merchants, by id: what the lists, the export and the digest show.
/// Only the two columns: decoding whole rows (two timestamps each) was a tenth of the
/// request list's time (perf, issue 17).
pub fn merchant_names(conn: &mut DbConn, ids: &[i64]) -> QueryResult<std::collections::HashMap<i64, String>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let rows: Vec<(i64, String)> = crate::with_conn!(conn, |c| merchants::table
        .filter(crate::db::in_any(merchants::id, ids))
        .select((merchants::id, merchants::name))
        .load(c)?);
    Ok(rows.into_iter().collect())
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = confirmations)]
pub struct Confirmation {
    pub id: i64,
    pub request_id: i64,
    pub kind: String,
    pub mail_message_id: Option<i64>,
    pub recorded_by: Option<i64>,
    pub reason: String,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = crate::db::OptTs)]
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<i64>,
}

pub fn insert_confirmation(
    conn: &mut DbConn,
    request_id: i64,
    kind: &str,
    mail_message_id: Option<i64>,
    recorded_by: Option<i64>,
    reason: &str,
) -> QueryResult<i64> {
    diesel::insert_into(confirmations::table)
        .values((
            confirmations::request_id.eq(request_id),
            confirmations::kind.eq(kind),
            confirmations::mail_message_id.eq(mail_message_id),
            confirmations::recorded_by.eq(recorded_by),
            confirmations::reason.eq(reason),
            confirmations::created_at.eq(crate::db::now()),
        ))
        .returning(confirmations::id)
        .get_result(conn)
}

pub fn confirmations_of(conn: &mut DbConn, request_id: i64) -> QueryResult<Vec<Confirmation>> {
    crate::with_conn!(conn, |c| confirmations::table
        .filter(confirmations::request_id.eq(request_id))
        .order(confirmations::created_at.asc())
        .select(Confirmation::as_select())
        .load(c))
}

/// The kinds of the live (not revoked) confirmations of several requests, as
/// (request id, kind), in one query: all a list needs to say what is missing. Reading
/// whole rows for it (two timestamps and the reason each) was 12% of the request
/// list's samples on the demo data (`perf`, issue 17).
pub fn live_confirmation_kinds_of(conn: &mut DbConn, request_ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    crate::with_conn!(conn, |c| confirmations::table
        .filter(crate::db::in_any(confirmations::request_id, request_ids.to_vec()))
        .filter(confirmations::revoked_at.is_null())
        .select((confirmations::request_id, confirmations::kind))
        .load(c))
}

pub fn confirmation(conn: &mut DbConn, id: i64) -> QueryResult<Confirmation> {
    confirmations::table.find(id).select(Confirmation::as_select()).first(conn)
}

pub fn revoke_confirmation(conn: &mut DbConn, id: i64, by: i64) -> QueryResult<()> {
    diesel::update(confirmations::table.find(id))
        .set((confirmations::revoked_at.eq(Some(crate::db::now())), confirmations::revoked_by.eq(Some(by))))
        .execute(conn)?;
    Ok(())
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = request_events)]
pub struct Event {
    pub id: i64,
    pub request_id: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub at: NaiveDateTime,
    pub user_id: Option<i64>,
    pub actor: String,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub body: String,
    pub mail_message_id: Option<i64>,
}

pub struct NewEvent<'a> {
    pub request_id: i64,
    pub user_id: Option<i64>,
    pub actor: &'a str,
    pub kind: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub body: &'a str,
    pub mail_message_id: Option<i64>,
}

pub fn insert_event(conn: &mut DbConn, e: &NewEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(request_events::table)
        .values((
            request_events::request_id.eq(e.request_id),
            request_events::at.eq(crate::db::now()),
            request_events::user_id.eq(e.user_id),
            request_events::actor.eq(e.actor),
            request_events::kind.eq(e.kind),
            request_events::from_state.eq(e.from_state),
            request_events::to_state.eq(e.to_state),
            request_events::body.eq(e.body),
            request_events::mail_message_id.eq(e.mail_message_id),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn events_of(conn: &mut DbConn, request_id: i64) -> QueryResult<Vec<Event>> {
    crate::with_conn!(conn, |c| request_events::table
        .filter(request_events::request_id.eq(request_id))
        .order((request_events::at.asc(), request_events::id.asc()))
        .select(Event::as_select())
        .load(c))
}

pub fn set_assignee(conn: &mut DbConn, id: i64, user_id: i64) -> QueryResult<()> {
    diesel::update(requests::table.find(id))
        .set((requests::assignee_id.eq(Some(user_id)), requests::updated_at.eq(crate::db::now())))
        .execute(conn)?;
    Ok(())
}

/// Records the POS identifiers a deployment gave the point.
pub fn set_point_pos(conn: &mut DbConn, id: i64, pos_parent: &str, pos_id: &str, point_code: &str) -> QueryResult<()> {
    diesel::update(points::table.find(id))
        .set((
            points::pos_parent.eq(pos_parent),
            points::pos_id.eq(pos_id),
            points::point_code.eq(point_code),
            points::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(())
}
