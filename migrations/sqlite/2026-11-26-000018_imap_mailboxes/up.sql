-- Reading state of each IMAP mailbox partner mail is read from: the UIDVALIDITY seen
-- and the last UID stored (so no message is read twice), who reads it now (a lease,
-- so only one node at a time does), and how the last attempt went.
CREATE TABLE mail_imap_mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL UNIQUE,
    uid_validity BIGINT,
    last_uid BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_ok_at TIMESTAMP,
    last_error TEXT,
    last_error_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
