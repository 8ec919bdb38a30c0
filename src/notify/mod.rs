//! Notifications on every new transaction ("Kho ứng dụng"). Webhooks today, in three
//! formats (Casso legacy, Casso V2 signed, Standard Webhooks); a delivery per
//! (transaction, integration, recipient), born in the transaction that stores the bank
//! transaction, retried on a documented schedule, logged attempt by attempt.

pub mod handlers;
pub mod models;
pub mod service;
pub mod webhook;
