//! A query of one fixed text, kept prepared like diesel's own selects.
//!
//! Diesel never caches a `sql_query` (nor an `UPDATE`, an upsert's `DO UPDATE` or an
//! insert whose columns may be `DEFAULT`): its text can change with the values, and a
//! cache of every text would grow without end. The queue's claim is a `sql_query`, so
//! it was parsed and planned on every round, on PostgreSQL as an `execute <unnamed>`.
//! The cache is keyed by the SQL text and the bind types, so caching such a query is
//! always correct; it is only bounded when the call site writes one text.
//!
//! Only for queries that return rows (`load`, `get_result`), run on the backend's own
//! connection as the claim is (`with_conn!`). Diesel hands `execute` a reference to
//! the statement, and a reference answers "may this be cached?" by walking the
//! statement itself, so an `UPDATE … execute` stays uncached whatever it is wrapped in
//! (test `db::the_queue_prepares_its_claim_once_per_connection`).

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// See the module.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(Q);

/// `query`, prepared once per connection and reused (see the module for where it
/// holds). Only for a call site that writes one text: each distinct text stays in the
/// connection's cache.
pub fn cached<Q>(query: Q) -> Cached<Q> {
    Cached(query)
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

// No static id: the cache keys it by its SQL text (and bind types).
impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Cached<Q> {}

/// A fixed piece of SQL as an expression of type `ST` (a correlated subquery in a
/// select list, say). Diesel's `sql()` marks every statement it is in as not to be
/// cached, so a list page that used it prepared its page query anew on every request
/// (`sqlite3_prepare_v3`, 16% of `/requests`' instructions under callgrind, session 25).
/// The text is fixed, so the statement stays cacheable.
#[derive(Debug, Clone, Copy)]
pub struct StaticSql<ST>(&'static str, std::marker::PhantomData<ST>);

/// See [`StaticSql`]. The text is written into the statement as it is: never build it
/// from a value a user gave.
pub const fn static_sql<ST>(text: &'static str) -> StaticSql<ST> {
    StaticSql(text, std::marker::PhantomData)
}

impl<ST: diesel::sql_types::SqlType + diesel::expression::TypedExpressionType> diesel::Expression for StaticSql<ST> {
    type SqlType = ST;
}

impl<ST, QS> diesel::AppearsOnTable<QS> for StaticSql<ST> where Self: diesel::Expression {}

impl<ST, QS> diesel::SelectableExpression<QS> for StaticSql<ST> where Self: diesel::AppearsOnTable<QS> {}

impl<ST, G> diesel::expression::ValidGrouping<G> for StaticSql<ST> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

// No static id: a statement with one is cached by its text, which this does not vary.
impl<ST> QueryId for StaticSql<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST, DB: Backend> QueryFragment<DB> for StaticSql<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}
