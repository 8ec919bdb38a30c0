//! Accounts: staff (roles, admin pages, first-run setup) and merchants (self-service
//! sign-up, mailed links, OpenID sign-in); passwords, sessions' users, throttling.
//!
//! Rules: passwords are argon2id hashes only; an account is looked up by its
//! lower-cased e-mail; a failed login never tells whether the account exists;
//! every change to an account writes an audit row in the same transaction; the last
//! enabled admin can be neither disabled nor stripped of the admin role.

pub mod handlers;
pub mod merchant;
pub mod models;
pub mod oidc;
pub mod pages;
pub mod portal;
pub mod service;

pub use models::{Role, Roles, User};

/// Old login failures are dropped every hour.
pub fn register_jobs(r: &mut crate::worker::runner::Registry) {
    r.register(service::PRUNE_JOB, service::prune_job);
    r.every("prune-login-failures", crate::worker::schedule::Every::Seconds(3600), service::PRUNE_JOB);
}
