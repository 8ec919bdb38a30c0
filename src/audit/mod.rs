//! The audit trail: one table, one helper every state change calls inside its own
//! transaction, and the admin page that reads it.

pub mod handlers;
pub mod models;

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::audit_log;

/// Who did something: a signed-in user, or the system (CLI, setup, worker).
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub label: String,
}

impl Actor {
    pub fn user(id: i64, email: &str) -> Self {
        Actor { user_id: Some(id), label: email.to_string() }
    }

    pub fn system(label: &str) -> Self {
        Actor { user_id: None, label: label.to_string() }
    }
}

/// Writes one audit row. Call it inside the transaction of the change it records, so
/// the change and its record commit or roll back together.
pub fn record(
    conn: &mut DbConn,
    actor: &Actor,
    entity_type: &str,
    entity_id: impl ToString,
    action: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(crate::db::now()),
            audit_log::user_id.eq(actor.user_id),
            audit_log::actor.eq(&actor.label),
            audit_log::entity_type.eq(entity_type),
            audit_log::entity_id.eq(entity_id.to_string()),
            audit_log::action.eq(action),
            audit_log::before_json.eq(before.map(|v| v.to_string())),
            audit_log::after_json.eq(after.map(|v| v.to_string())),
        ))
        .execute(conn)?;
    Ok(())
}
