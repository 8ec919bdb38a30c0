//! The single integration-test binary: one module per domain.

#[macro_use]
mod support;

mod accounts;
mod config;
mod db;
mod demo;
mod e2e;
mod hub;
mod mail_in;
mod merchant;
mod oidc;
mod pyc;
mod queue;
mod report;
mod roles;
mod smtp;
mod web;
