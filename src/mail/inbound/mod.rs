//! Inbound partner mail: keep the raw bytes, parse, classify, thread, triage.
//!
//! Rules: every path (browser upload, CLI import, `POST /inbound/mail`, the watched
//! Maildir, the IMAP mailbox) calls [`service::ingest`] or, for many messages at once,
//! [`batch::ingest_batch`]; raw bytes are stored before anything can fail;
//! a Message-ID is processed once; partner HTML is shown only after sanitising.

pub mod batch;
pub mod classify;
pub mod handlers;
pub mod imap;
pub mod maildir;
pub mod models;
pub mod pages;
pub mod parse;
pub mod service;
