DROP TABLE mail_imap_mailboxes;
