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
