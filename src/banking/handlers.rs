//! Placeholder replaced below.
crate::routes! {}
