//! Mail: inbound partner mail (kept raw, parsed, classified, threaded, triaged) and
//! outgoing mail (composed once, queued, sent by the worker).

pub mod inbound;
pub mod outbound;
pub mod sent;

/// The mail jobs: sending the outbox, and reading the Maildir when one is configured.
pub fn register_jobs(r: &mut crate::worker::runner::Registry, config: &crate::config::Config) {
    r.register(outbound::SEND_JOB, outbound::send_job);
    r.register(inbound::maildir::SCAN_JOB, inbound::maildir::scan_job);
    if config.mail.maildir.is_some() {
        let secs = config.mail.maildir_interval.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
        r.every("maildir", crate::worker::schedule::Every::Seconds(secs), inbound::maildir::SCAN_JOB);
    }
}
