ALTER TABLE partners DROP COLUMN reply_template;
