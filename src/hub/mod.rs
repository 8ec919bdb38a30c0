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

/// What the desk's pages read on every request and an admin rarely changes, held per
/// process ([`crate::services::RowCache`]): reading them was two statements of every list
/// page. A change made here shows from the next request; one made by another process
/// (another node, the CLI) within [`REFERENCE_TTL`].
pub struct Reference {
    /// Every partner's brief, by code.
    pub partners: Vec<partners::Brief>,
    pub thresholds: ageing::Thresholds,
}

pub const REFERENCE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Reference {
    pub fn load(conn: &mut crate::db::DbConn) -> diesel::QueryResult<Self> {
        Ok(Reference { partners: partners::briefs(conn)?, thresholds: ageing::Thresholds::load(conn)? })
    }

    /// The cache of it, moved by [`crate::db::note_reference_written`].
    pub fn cache(versions: std::sync::Arc<crate::services::Versions>) -> crate::services::RowCache<Self> {
        crate::services::RowCache::new(versions, |v| &v.reference, REFERENCE_TTL, Self::load)
    }
}

/// The desk's overdue requests, to the people responsible, every morning.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(ageing::DIGEST_JOB, ageing::digest_job);
    r.every("overdue-digest", crate::worker::schedule::Every::Daily { hour: 8, minute: 0 }, ageing::DIGEST_JOB);
}
