DROP INDEX mail_messages_newest_idx;
