//! Businesses (doanh nghiệp): the merchant side's unit of ownership. Members with a
//! role (owner / manager / viewer), invitations by mail, the plan and its 14-day
//! trial, the bank accounts linked to it, upgrade requests, and the staff's read-only
//! support view.
//!
//! Rules: a merchant reaches a business only through a membership checked once per
//! request (`handlers::Biz::load`); a foreign business is a 404. A business is
//! deleted only once no bank account is linked. Staff views of a business are audited.

pub mod handlers;
pub mod models;
pub mod pages;
pub mod service;
pub mod staff;
