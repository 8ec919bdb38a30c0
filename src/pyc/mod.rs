//! PYC tickets (phiếu yêu cầu triển khai): created from an accepted request, reviewed
//! and created (B7, B8), deployed by a technician through the template's checklist,
//! answered to the partner (B5) and closed by the 0 đ invoice.
//!
//! Rules: numbers come from a per-year counter inside the creating transaction (no gaps,
//! no duplicates across nodes); Key1/Key2 are sealed before storage and revealed only
//! through an audited action; a PYC keeps the template version it was made from.

pub mod handlers;
pub mod models;
pub mod service;
pub mod state;

pub use state::PycState;
