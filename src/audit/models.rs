//! Queries over the audit trail.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::audit_log;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    #[diesel(deserialize_as = crate::db::Ts)]
    pub at: NaiveDateTime,
    pub user_id: Option<i64>,
    pub actor: String,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// Filters of the audit page; empty fields do not filter.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub user_id: Option<i64>,
    pub from: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

fn filtered(f: &AuditFilter) -> audit_log::BoxedQuery<'static, <DbConn as diesel::Connection>::Backend> {
    let mut q = audit_log::table.into_boxed();
    if let Some(t) = &f.entity_type {
        q = q.filter(audit_log::entity_type.eq(t.clone()));
    }
    if let Some(id) = &f.entity_id {
        q = q.filter(audit_log::entity_id.eq(id.clone()));
    }
    if let Some(u) = f.user_id {
        q = q.filter(audit_log::user_id.eq(u));
    }
    if let Some(from) = f.from {
        q = q.filter(audit_log::at.ge(from));
    }
    if let Some(until) = f.until {
        q = q.filter(audit_log::at.lt(until));
    }
    q
}

/// One page of entries, newest first, and the total count.
pub fn page(conn: &mut DbConn, f: &AuditFilter, offset: i64, limit: i64) -> QueryResult<(Vec<AuditEntry>, i64)> {
    let total = filtered(f).count().get_result(conn)?;
    let rows = filtered(f)
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// The entity types present, for the filter's drop-down.
pub fn entity_types(conn: &mut DbConn) -> QueryResult<Vec<String>> {
    audit_log::table.select(audit_log::entity_type).distinct().order(audit_log::entity_type.asc()).load(conn)
}
