//! Mail: inbound partner mail (kept raw, parsed, classified, threaded, triaged) and
//! outgoing mail (composed once, queued, sent by the worker).

pub mod inbound;
pub mod outbound;
pub mod sent;
