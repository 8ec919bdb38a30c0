//! hubgate: the hub connection desk and bank-sync notifications of a POS company,
//! one binary serving the web app, the worker and the CLI. See docs/ARCHITECTURE.md.

pub mod accounts;
pub mod api;
pub mod app;
pub mod audit;
pub mod banking;
pub mod bench;
pub mod business;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod fmt;
pub mod hub;
pub mod mail;
pub mod notify;
pub mod pyc;
pub mod reports;
pub mod secrets;
pub mod services;
pub mod sheets;
pub mod web;
pub mod worker;
