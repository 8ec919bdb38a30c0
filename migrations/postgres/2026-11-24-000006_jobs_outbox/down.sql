DROP TABLE mail_outbox;
DROP TABLE job_events;
DROP TABLE jobs;
