//! Periodic work as unique-keyed jobs: each schedule's current slot is enqueued with
//! the key `schedule:<name>:<slot>`, so any number of nodes ticking at once run each
//! slot exactly once. Daily and monthly slots are computed in Asia/Ho_Chi_Minh.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::time::Duration;

use super::{JobOptions, enqueue};
use crate::db::DbConn;
use crate::error::AppResult;
use crate::fmt::TZ;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Every {
    Seconds(u32),
    Daily { hour: u32, minute: u32 },
    Monthly { day: u32, hour: u32, minute: u32 },
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub every: Every,
    pub kind: String,
    pub payload: serde_json::Value,
}

fn local_to_utc(local: NaiveDateTime) -> NaiveDateTime {
    TZ.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc).naive_utc()).unwrap_or(local)
}

fn monthly_in(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> Option<NaiveDateTime> {
    // Day 31 in a 30-day month means its last day.
    let last = (28..=31).rev().find(|d| NaiveDate::from_ymd_opt(year, month, *d).is_some())?;
    NaiveDate::from_ymd_opt(year, month, day.min(last))?.and_hms_opt(hour, minute, 0)
}

/// The start (UTC) of the latest slot at or before `now` (UTC).
pub fn current_slot(every: &Every, now: NaiveDateTime) -> Option<NaiveDateTime> {
    match every {
        Every::Seconds(n) => {
            let n = i64::from((*n).max(1));
            let t = now.and_utc().timestamp();
            chrono::DateTime::from_timestamp(t - t.rem_euclid(n), 0).map(|d| d.naive_utc())
        }
        Every::Daily { hour, minute } => {
            let local = Utc.from_utc_datetime(&now).with_timezone(&TZ).naive_local();
            let today = local.date().and_hms_opt(*hour, *minute, 0)?;
            let slot = if local >= today { today } else { today - chrono::Duration::days(1) };
            Some(local_to_utc(slot))
        }
        Every::Monthly { day, hour, minute } => {
            let local = Utc.from_utc_datetime(&now).with_timezone(&TZ).naive_local();
            let this = monthly_in(local.year(), local.month(), *day, *hour, *minute)?;
            let slot = if local >= this {
                this
            } else {
                let (y, m) =
                    if local.month() == 1 { (local.year() - 1, 12) } else { (local.year(), local.month() - 1) };
                monthly_in(y, m, *day, *hour, *minute)?
            };
            Some(local_to_utc(slot))
        }
    }
}

/// Enqueues the current slot of every schedule; returns how many were new.
pub fn tick(conn: &mut DbConn, schedules: &[Schedule], now: NaiveDateTime) -> AppResult<usize> {
    let mut added = 0;
    for s in schedules {
        let Some(slot) = current_slot(&s.every, now) else {
            continue;
        };
        let key = format!("schedule:{}:{}", s.name, slot.format("%Y-%m-%dT%H:%M:%S"));
        let mut payload = s.payload.clone();
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("slot".into(), serde_json::Value::String(slot.format("%Y-%m-%dT%H:%M:%S").to_string()));
        }
        let opts = JobOptions { run_at: Some(slot), max_attempts: 5, unique_key: Some(key) };
        if enqueue(conn, &s.kind, &payload, &opts)?.is_some() {
            added += 1;
        }
    }
    Ok(added)
}

/// The schedules of the app, from its configuration.
pub fn standard(config: &crate::config::Config) -> Vec<Schedule> {
    // The accountants' month-end list: the 1st at 08:00, local time.
    let mut out = vec![Schedule {
        name: "monthly-report".into(),
        every: Every::Monthly { day: 1, hour: 8, minute: 0 },
        kind: crate::reports::MONTHLY_JOB.into(),
        payload: serde_json::json!({}),
    }];
    out.push(Schedule {
        name: "prune-login-failures".into(),
        every: Every::Seconds(3600),
        kind: crate::accounts::service::PRUNE_JOB.into(),
        payload: serde_json::json!({}),
    });
    out.push(Schedule {
        name: "prune-form-submissions".into(),
        every: Every::Seconds(3600),
        kind: crate::web::once::PRUNE_JOB.into(),
        payload: serde_json::json!({}),
    });
    // The desk's overdue requests, to the people responsible, every morning.
    out.push(Schedule {
        name: "overdue-digest".into(),
        every: Every::Daily { hour: 8, minute: 0 },
        kind: crate::hub::ageing::DIGEST_JOB.into(),
        payload: serde_json::json!({}),
    });
    // Bank accounts whose next sync has come (each plan sets its own interval).
    out.push(Schedule {
        name: "bank-sync".into(),
        every: Every::Seconds(30),
        kind: crate::banking::sync::DUE_JOB.into(),
        payload: serde_json::json!({}),
    });
    if config.mail.maildir.is_some() {
        out.push(Schedule {
            name: "maildir".into(),
            every: Every::Seconds(config.mail.maildir_interval.as_secs().clamp(1, u64::from(u32::MAX)) as u32),
            kind: crate::mail::inbound::maildir::SCAN_JOB.into(),
            payload: serde_json::json!({}),
        });
    }
    out
}

/// Ticks every few seconds until `stop`.
pub async fn run(state: crate::web::AppState, schedules: Vec<Schedule>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if schedules.is_empty() {
        return;
    }
    loop {
        let s = schedules.clone();
        let pool = state.pool.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            tick(&mut conn, &s, crate::db::now()).map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::warn!(error = %e, "scheduler tick failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap_or_default()
    }

    #[test]
    fn monthly_slot_is_local() {
        let every = Every::Monthly { day: 1, hour: 8, minute: 0 };
        // 1 Dec 00:30 UTC is 07:30 local: still November's slot.
        assert_eq!(current_slot(&every, utc("2026-12-01 00:30")), Some(utc("2026-11-01 01:00")));
        // 01:00 UTC = 08:00 local on the 1st: December's slot begins.
        assert_eq!(current_slot(&every, utc("2026-12-01 01:00")), Some(utc("2026-12-01 01:00")));
    }

    #[test]
    fn daily_and_interval_slots() {
        let daily = Every::Daily { hour: 23, minute: 30 };
        assert_eq!(current_slot(&daily, utc("2026-11-24 17:00")), Some(utc("2026-11-24 16:30")));
        assert_eq!(current_slot(&daily, utc("2026-11-24 16:00")), Some(utc("2026-11-23 16:30")));
        assert_eq!(current_slot(&Every::Seconds(300), utc("2026-11-24 10:07")), Some(utc("2026-11-24 10:05")));
    }

    #[test]
    fn day_31_falls_back_to_the_last_day() {
        let every = Every::Monthly { day: 31, hour: 8, minute: 0 };
        assert_eq!(current_slot(&every, utc("2026-12-01 00:00")), Some(utc("2026-11-30 01:00")));
    }
}
