DROP TABLE mail_rules;
DROP TABLE mail_attachments;
DROP TABLE mail_messages;
DROP TABLE mail_threads;
DROP TABLE mail_blobs;
DROP TABLE partners;
