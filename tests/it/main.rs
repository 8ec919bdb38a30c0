//! The single integration-test binary: one module per domain.

#[macro_use]
mod support;

mod accounts;
mod api;
mod api_docs;
mod banking;
mod channels;
mod config;
mod db;
mod demo;
mod desk;
mod e2e;
mod fakebank;
mod forms;
mod hub;
mod imap;
mod local_pg;
mod mail_batch;
mod mail_in;
mod merchant;
mod nodes;
mod notify;
mod oauth_apps;
mod oidc;
mod pyc;
mod queue;
mod realmail;
mod report;
mod roles;
mod secrets;
mod smtp;
mod statement;
mod web;
