//! `column IN (values)` written as one statement whatever the number of values.
//!
//! Diesel writes `eq_any` on SQLite as `IN (?, ?, …)`, a new text for every count of
//! values, and marks it unsafe for its statement cache: every list page parsed and
//! planned such queries anew (a quarter of `/requests`'s CPU under `perf`, issue 17:
//! its page of requests by state, the merchants' names, the missing confirmations).
//! [`in_any`] binds the values as one JSON array on SQLite (`IN (SELECT value FROM
//! json_each(?))`, which SQLite's planner drives through the column's index as it
//! does a list) and as one array on PostgreSQL (`= ANY(?)`, what diesel writes there).
//!
//! [`in_many`] is the same test for a list of thousands: SQLite's planner cannot see
//! how long the JSON array is, and drove such a list through the column's index too,
//! one seek and one row per value (see [`crate::hub::models::Found`]). Written as
//! `+column`, the column is no index key any more, so the other conditions choose the
//! index and each row they find is tested against the list.

use diesel::expression::{AppearsOnTable, Expression, ValidGrouping};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, Bool, SqlType, Text};
use diesel::sqlite::Sqlite;

use super::MultiBackend;

/// See the module. An empty list matches no row on either backend.
#[derive(Debug, Clone)]
pub struct InAny<C, T> {
    column: C,
    values: Vec<T>,
    json: String,
    /// SQLite: `+column`, tested on the rows the other conditions find (see [`in_many`]).
    tested: bool,
}

/// `column IN (values)`, one cached statement for any number of values.
pub fn in_any<C, T: serde::Serialize>(column: C, values: Vec<T>) -> InAny<C, T> {
    // Numbers and strings always serialize; the fallback matches nothing.
    let json = serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
    InAny { column, values, json, tested: false }
}

/// [`in_any`] for a long list: on SQLite the rows are found through the other
/// conditions and tested against the list, not looked up value by value.
pub fn in_many<C, T: serde::Serialize>(column: C, values: Vec<T>) -> InAny<C, T> {
    InAny { tested: true, ..in_any(column, values) }
}

impl<C: Expression, T> Expression for InAny<C, T> {
    type SqlType = Bool;
}

impl<C: AppearsOnTable<QS>, T, QS> AppearsOnTable<QS> for InAny<C, T> {}

impl<C: ValidGrouping<G>, T, G> ValidGrouping<G> for InAny<C, T> {
    type IsAggregate = C::IsAggregate;
}

// No static id: the statement is cached by its text, which no longer varies.
impl<C, T> QueryId for InAny<C, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C: QueryFragment<Sqlite>, T> QueryFragment<Sqlite> for InAny<C, T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
        if self.tested {
            out.push_sql("+");
        }
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, String>(&self.json)?;
        out.push_sql("))");
        Ok(())
    }
}

impl<C, T> QueryFragment<Pg> for InAny<C, T>
where
    C: QueryFragment<Pg> + Expression,
    C::SqlType: SqlType,
    Pg: diesel::sql_types::HasSqlType<C::SqlType>,
    Vec<T>: ToSql<Array<C::SqlType>, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" = ANY(");
        out.push_bind_param::<Array<C::SqlType>, Vec<T>>(&self.values)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<C, T> QueryFragment<MultiBackend> for InAny<C, T>
where
    Self: QueryFragment<Sqlite> + QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> diesel::QueryResult<()> {
        MultiBackend::walk_variant_ast(self, pass)
    }
}
