//! Mail: inbound partner mail (kept raw, parsed, classified, threaded, triaged).

pub mod inbound;
