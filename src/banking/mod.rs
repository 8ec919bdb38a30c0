//! Bank linking and the transaction store: the bank catalogue, connections and their
//! sealed secrets, the connectors (official Open API, RPA agent, demo; push hooks and
//! statements arrive on their own), the sync engine, and the merchant's pages.
//!
//! Rules: a transaction is stored once per (account, bank id), never merged with
//! another that carries a different id, and a deleted one stays as a tombstone; a
//! sync saves its cursor only after its last page; every connection secret is sealed.

pub mod catalogue;
pub mod connectors;
pub mod handlers;
pub mod models;
pub mod service;
pub mod statement;
pub mod sync;

/// Syncing one account, and every 30 s the accounts whose next sync has come (each
/// plan sets its own interval); importing a confirmed statement.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(sync::SYNC_JOB, sync::sync_job);
    r.register(statement::IMPORT_JOB, statement::import_job);
    r.register(sync::DUE_JOB, sync::due_job);
    r.every("bank-sync", crate::worker::schedule::Every::Seconds(30), sync::DUE_JOB);
}
