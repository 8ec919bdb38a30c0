//! The hub connection desk: merchants and points, and connection requests that move
//! B1 → B8 with their confirmations and a timeline of who did what.
//!
//! Rules: states move only through [`service::transition`], which refuses illegal
//! moves and stale forms (optimistic version); every change writes a timeline event
//! and an audit row in the same transaction.

pub mod admin;
pub mod ageing;
pub mod handlers;
pub mod models;
pub mod notice;
pub mod pages;
pub mod partners;
pub mod reference;
pub mod service;
pub mod state;

/// The desk's overdue requests, to the people responsible, every morning.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(ageing::DIGEST_JOB, ageing::digest_job);
    r.every("overdue-digest", crate::worker::schedule::Every::Daily { hour: 8, minute: 0 }, ageing::DIGEST_JOB);
}
