//! Mail to staff about desk work: a request or PYC handed to them, a PYC waiting for
//! review (B7), a PYC created (B8) for its technician, and the morning digest of
//! overdue requests.
//!
//! Rules: each person chooses which of these they get (no row in `staff_mail_prefs`
//! means all on); mails are queued through the outbox inside the caller's transaction,
//! so a rolled-back change mails nobody; nobody is mailed about their own action, and
//! disabled or merchant accounts are never mailed.

use diesel::prelude::*;

use crate::accounts::models::User;
use crate::audit::Actor;
use crate::config::Config;
use crate::db::DbConn;
use crate::db::schema::staff_mail_prefs;
use crate::error::AppResult;
use crate::mail::outbound::{OutgoingMail, queue_mail};

/// The desk events a person can be mailed about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Assigned,
    ReviewNeeded,
    PycCreated,
    Digest,
}

/// One person's choices.
#[derive(Queryable, Selectable, Debug, Clone, Copy, PartialEq, Eq)]
#[diesel(table_name = staff_mail_prefs)]
pub struct Prefs {
    pub on_assign: bool,
    pub on_review: bool,
    pub on_pyc_created: bool,
    pub on_digest: bool,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs { on_assign: true, on_review: true, on_pyc_created: true, on_digest: true }
    }
}

impl Prefs {
    pub fn wants(&self, e: Event) -> bool {
        match e {
            Event::Assigned => self.on_assign,
            Event::ReviewNeeded => self.on_review,
            Event::PycCreated => self.on_pyc_created,
            Event::Digest => self.on_digest,
        }
    }
}

pub fn prefs(conn: &mut DbConn, user_id: i64) -> QueryResult<Prefs> {
    Ok(staff_mail_prefs::table.find(user_id).select(Prefs::as_select()).first(conn).optional()?.unwrap_or_default())
}

/// Saves a person's choices (audited).
pub fn save_prefs(conn: &mut DbConn, actor: &Actor, user_id: i64, p: Prefs) -> AppResult<()> {
    crate::db::tx(conn, |conn| {
        let before = prefs(conn, user_id)?;
        let t = crate::db::now();
        let values = (
            staff_mail_prefs::on_assign.eq(p.on_assign),
            staff_mail_prefs::on_review.eq(p.on_review),
            staff_mail_prefs::on_pyc_created.eq(p.on_pyc_created),
            staff_mail_prefs::on_digest.eq(p.on_digest),
            staff_mail_prefs::updated_at.eq(t),
        );
        let n = diesel::update(staff_mail_prefs::table.find(user_id)).set(values).execute(conn)?;
        if n == 0 {
            diesel::insert_into(staff_mail_prefs::table)
                .values((staff_mail_prefs::user_id.eq(user_id), values))
                .execute(conn)?;
        }
        let json = |p: Prefs| serde_json::json!({"on_assign": p.on_assign, "on_review": p.on_review, "on_pyc_created": p.on_pyc_created, "on_digest": p.on_digest});
        crate::audit::record(conn, actor, "user", user_id, "mail_prefs", Some(json(before)), Some(json(p)))?;
        Ok(())
    })
}

/// Active staff holding `role` (admins are not implied: they did not ask for desk mail).
pub fn staff_with_role(conn: &mut DbConn, role: crate::accounts::Role) -> QueryResult<Vec<User>> {
    Ok(crate::accounts::models::list(conn)?
        .into_iter()
        .filter(|u| !u.disabled && u.kind() == crate::accounts::models::UserKind::Staff && u.roles().has(role))
        .collect())
}

/// Queues `subject`/`text` to each of `users` who wants `event`, except the actor.
/// Returns how many mails were queued.
pub fn send(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    users: &[User],
    event: Event,
    subject: &str,
    text: &str,
) -> AppResult<usize> {
    let mut sent = 0;
    let mut seen = std::collections::HashSet::new();
    for u in users {
        if u.disabled
            || u.kind() != crate::accounts::models::UserKind::Staff
            || actor.user_id == Some(u.id)
            || !seen.insert(u.id)
        {
            continue;
        }
        if !prefs(conn, u.id)?.wants(event) {
            continue;
        }
        let body = format!(
            "Chào {},\n\n{text}\n\n— hubgate\n(Đổi loại thư nhận được tại {}/account/settings)",
            u.name, config.base_url
        );
        let mail = OutgoingMail::simple(vec![u.email.clone()], subject, body);
        queue_mail(conn, &config.outbound, actor, &mail)?;
        sent += 1;
    }
    Ok(sent)
}

/// The link to a page of the desk, for mail bodies.
pub fn link(config: &Config, path: &str) -> String {
    format!("{}{path}", config.base_url.trim_end_matches('/'))
}
