//! Notifications on every new transaction ("Kho ứng dụng"): webhooks in three formats
//! (Casso legacy, Casso V2 signed, Standard Webhooks), Zalo OA (the owner and invited
//! followers), e-mail (each transaction or a digest) and Telegram. A delivery per
//! (transaction, integration, recipient), born in the transaction that stores the bank
//! transaction, retried on a documented schedule, logged attempt by attempt.

pub mod handlers;
pub mod message;
pub mod models;
pub mod service;
pub mod telegram;
pub mod webhook;
pub mod zalo;

/// Deliveries, e-mail digests and Zalo OA events.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(service::DELIVER_JOB, service::deliver_job);
    r.register(service::DIGEST_JOB, service::digest_job);
    r.register(zalo::EVENT_JOB, zalo::event_job);
}
