-- The inbox lists the newest mail first: read in this index's order, a page stops
-- after its rows instead of sorting every message.
CREATE INDEX mail_messages_newest_idx ON mail_messages (created_at, id);
