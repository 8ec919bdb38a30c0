//! How long a request may wait in each state before it is overdue, and the morning
//! digest of overdue requests to the people responsible for them.
//!
//! Rules: thresholds are data (admins edit them, audited); a state without a threshold
//! never ages (the closed states); the digest is one scheduled slot per day, so several
//! workers send it once, and it skips a person already mailed for that day (a retried
//! job after a crash mails nobody twice).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{self, Request, RequestFilter};
use super::notice::{self, Event};
use super::state::State;
use crate::accounts::Role;
use crate::accounts::models::User;
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::DbConn;
use crate::db::schema::{ageing_thresholds, mail_outbox};
use crate::error::{AppError, AppResult};

pub const DIGEST_JOB: &str = "desk.overdue_digest";

/// Days allowed per state code.
#[derive(Debug, Clone, Default)]
pub struct Thresholds(pub BTreeMap<String, i64>);

impl Thresholds {
    pub fn load(conn: &mut DbConn) -> QueryResult<Self> {
        let rows: Vec<(String, i64)> =
            ageing_thresholds::table.select((ageing_thresholds::state, ageing_thresholds::days)).load(conn)?;
        Ok(Thresholds(rows.into_iter().collect()))
    }

    pub fn days(&self, state: &str) -> Option<i64> {
        self.0.get(state).copied()
    }

    /// Whether a request in `state` since `since` has waited longer than it allows at `now`.
    pub fn is_overdue(&self, state: &str, since: NaiveDateTime, now: NaiveDateTime) -> bool {
        let open = State::from_code(state).is_some_and(|s| !s.is_closed());
        open && self.days(state).is_some_and(|d| since < now - chrono::Duration::days(d))
    }

    /// (state, entered before) pairs a request filter uses to keep only overdue ones.
    pub fn cutoffs(&self, now: NaiveDateTime) -> Vec<(String, NaiveDateTime)> {
        self.0
            .iter()
            .filter(|(s, _)| State::from_code(s).is_some_and(|s| !s.is_closed()))
            .map(|(s, d)| (s.clone(), now - chrono::Duration::days(*d)))
            .collect()
    }
}

/// The states an admin sets a threshold for: every open one.
pub fn open_states() -> Vec<State> {
    State::ALL.into_iter().filter(|s| !s.is_closed()).collect()
}

/// Saves the admin's thresholds (whole days, 1–365), audited with before and after.
pub fn save(conn: &mut DbConn, actor: &Actor, days: &[(String, String)]) -> AppResult<()> {
    let mut parsed = Vec::new();
    for (state, raw) in days {
        let s = State::from_code(state)
            .filter(|s| !s.is_closed())
            .ok_or_else(|| AppError::Validation(format!("Trạng thái không hợp lệ: {state}")))?;
        let d: i64 = raw.trim().parse().ok().filter(|d| (1..=365).contains(d)).ok_or_else(|| {
            AppError::Validation(format!("Số ngày của “{}” phải là số nguyên từ 1 đến 365.", s.label()))
        })?;
        parsed.push((s.code().to_string(), d));
    }
    crate::db::note_reference_written();
    crate::db::tx(conn, |conn| {
        let before = Thresholds::load(conn)?;
        let t = crate::db::now();
        for (state, d) in &parsed {
            let n = diesel::update(ageing_thresholds::table.find(state))
                .set((ageing_thresholds::days.eq(d), ageing_thresholds::updated_at.eq(t)))
                .execute(conn)?;
            if n == 0 {
                diesel::insert_into(ageing_thresholds::table)
                    .values((
                        ageing_thresholds::state.eq(state),
                        ageing_thresholds::days.eq(d),
                        ageing_thresholds::updated_at.eq(t),
                    ))
                    .execute(conn)?;
            }
        }
        let after = Thresholds::load(conn)?;
        audit::record(
            conn,
            actor,
            "ageing_thresholds",
            0,
            "update",
            Some(serde_json::json!(before.0)),
            Some(serde_json::json!(after.0)),
        )?;
        Ok(())
    })
}

/// Who answers for an overdue request: the salesperson holding it until the PYC is
/// created, then the PYC's technician, the accountants from B5 on; leaders when
/// nobody else is there.
fn responsible(conn: &mut DbConn, r: &Request, staff: &[User]) -> AppResult<Vec<i64>> {
    let active = |id: i64| staff.iter().any(|u| u.id == id);
    let with_role = |role: Role| staff.iter().filter(|u| u.roles().has(role)).map(|u| u.id).collect::<Vec<_>>();
    let mut out: Vec<i64> = match State::from_code(&r.state) {
        Some(State::Ticket | State::Deploying) => crate::pyc::models::pyc_of_request(conn, r.id)?
            .and_then(|p| p.technician_id)
            .or(r.assignee_id)
            .into_iter()
            .collect(),
        Some(State::Replied | State::Reported) => with_role(Role::Accountant),
        _ => r.assignee_id.into_iter().collect(),
    };
    out.retain(|id| active(*id));
    if out.is_empty() {
        out = with_role(Role::Leader);
    }
    Ok(out)
}

/// Mails each responsible person the overdue requests they answer for; returns how
/// many mails were queued. `day` names the digest (its local date).
pub fn send_digest(
    conn: &mut DbConn,
    config: &Config,
    actor: &Actor,
    now: NaiveDateTime,
    day: chrono::NaiveDate,
) -> AppResult<usize> {
    crate::db::tx(conn, |conn| {
        let thresholds = Thresholds::load(conn)?;
        let filter = RequestFilter { overdue: Some(thresholds.cutoffs(now)), ..Default::default() };
        let (overdue, _) = models::list_requests(conn, &filter, 0, i64::MAX)?;
        if overdue.is_empty() {
            return Ok(0);
        }
        let staff: Vec<User> = crate::accounts::models::list(conn)?
            .into_iter()
            .filter(|u| !u.disabled && u.kind() == crate::accounts::models::UserKind::Staff)
            .collect();
        let partners = crate::hub::partners::all(conn)?;
        let merchant_ids: Vec<i64> = overdue.iter().map(|r| r.merchant_id).collect();
        let merchants = models::merchant_names(conn, &merchant_ids)?;
        let mut per_person: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for r in &overdue {
            let partner = partners.iter().find(|p| p.id == r.partner_id).map(|p| p.code.as_str()).unwrap_or("?");
            let merchant = merchants.get(&r.merchant_id).map(String::as_str).unwrap_or("?");
            let state = State::from_code(&r.state).map(|s| s.label()).unwrap_or("?");
            let line = format!(
                "- #{} {partner} – {merchant}: “{state}” đã {} ngày (cho phép {} ngày) {}",
                r.id,
                (now - r.state_since).num_days(),
                thresholds.days(&r.state).unwrap_or(0),
                notice::link(config, &format!("/requests/{}", r.id))
            );
            for uid in responsible(conn, r, &staff)? {
                per_person.entry(uid).or_default().push(line.clone());
            }
        }
        let subject = format!("[hubgate] Yêu cầu quá hạn ngày {}", day.format("%d/%m/%Y"));
        let mut sent = 0;
        for (uid, lines) in per_person {
            let Some(u) = staff.iter().find(|u| u.id == uid) else { continue };
            let already: i64 = mail_outbox::table
                .filter(mail_outbox::subject.eq(&subject))
                .filter(mail_outbox::to_addrs.eq(&u.email))
                .count()
                .get_result(conn)?;
            if already > 0 {
                continue;
            }
            let text = format!(
                "{} yêu cầu bạn phụ trách đã chờ quá hạn:\n\n{}\n\nDanh sách đầy đủ: {}",
                lines.len(),
                lines.join("\n"),
                notice::link(config, "/requests?state=open&overdue=1")
            );
            sent += notice::send(conn, config, actor, std::slice::from_ref(u), Event::Digest, &subject, &text)?;
        }
        Ok(sent)
    })
}

/// The `desk.overdue_digest` job of one morning slot.
pub async fn digest_job(ctx: crate::worker::runner::JobCtx) -> Result<(), String> {
    let slot = ctx.payload["slot"]
        .as_str()
        .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
        .unwrap_or_else(crate::db::now);
    let config = ctx.services.config.clone();
    let actor = Actor::system(&format!("job {}", ctx.id));
    ctx.db(move |conn| send_digest(conn, &config, &actor, slot, crate::fmt::local_date(slot)).map(|_| ())).await
}
