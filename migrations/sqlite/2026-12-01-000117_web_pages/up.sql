-- The inbox lists the newest mail first: read in this index's order, a page stops
-- after its rows instead of sorting every message.
CREATE INDEX mail_messages_newest_idx ON mail_messages (created_at, id);
-- The request search matches `LIKE '%…%'` on names (folded), phones and codes. An
-- FTS5 trigram index answers such a LIKE (three characters or more) without reading
-- every merchant, point and PYC; it is case-insensitive, as `lower(…)` made the codes.
-- Each index holds no text of its own (content= the table) and follows its table
-- through the triggers. PostgreSQL has the same names as views over trigram indexes.
CREATE VIRTUAL TABLE merchants_trgm USING fts5(search_key, phone_key, content='merchants', content_rowid='id', tokenize='trigram');
INSERT INTO merchants_trgm (merchants_trgm) VALUES ('rebuild');
CREATE TRIGGER merchants_trgm_insert AFTER INSERT ON merchants BEGIN
    INSERT INTO merchants_trgm (rowid, search_key, phone_key) VALUES (new.id, new.search_key, new.phone_key);
END;
CREATE TRIGGER merchants_trgm_delete AFTER DELETE ON merchants BEGIN
    INSERT INTO merchants_trgm (merchants_trgm, rowid, search_key, phone_key) VALUES ('delete', old.id, old.search_key, old.phone_key);
END;
CREATE TRIGGER merchants_trgm_update AFTER UPDATE OF search_key, phone_key ON merchants BEGIN
    INSERT INTO merchants_trgm (merchants_trgm, rowid, search_key, phone_key) VALUES ('delete', old.id, old.search_key, old.phone_key);
    INSERT INTO merchants_trgm (rowid, search_key, phone_key) VALUES (new.id, new.search_key, new.phone_key);
END;
CREATE VIRTUAL TABLE points_trgm USING fts5(search_key, pos_id, point_code, content='points', content_rowid='id', tokenize='trigram');
INSERT INTO points_trgm (points_trgm) VALUES ('rebuild');
CREATE TRIGGER points_trgm_insert AFTER INSERT ON points BEGIN
    INSERT INTO points_trgm (rowid, search_key, pos_id, point_code) VALUES (new.id, new.search_key, new.pos_id, new.point_code);
END;
CREATE TRIGGER points_trgm_delete AFTER DELETE ON points BEGIN
    INSERT INTO points_trgm (points_trgm, rowid, search_key, pos_id, point_code) VALUES ('delete', old.id, old.search_key, old.pos_id, old.point_code);
END;
CREATE TRIGGER points_trgm_update AFTER UPDATE OF search_key, pos_id, point_code ON points BEGIN
    INSERT INTO points_trgm (points_trgm, rowid, search_key, pos_id, point_code) VALUES ('delete', old.id, old.search_key, old.pos_id, old.point_code);
    INSERT INTO points_trgm (rowid, search_key, pos_id, point_code) VALUES (new.id, new.search_key, new.pos_id, new.point_code);
END;
CREATE VIRTUAL TABLE pycs_trgm USING fts5(number, pos_id, point_code, content='pycs', content_rowid='id', tokenize='trigram');
INSERT INTO pycs_trgm (pycs_trgm) VALUES ('rebuild');
CREATE TRIGGER pycs_trgm_insert AFTER INSERT ON pycs BEGIN
    INSERT INTO pycs_trgm (rowid, number, pos_id, point_code) VALUES (new.id, new.number, new.pos_id, new.point_code);
END;
CREATE TRIGGER pycs_trgm_delete AFTER DELETE ON pycs BEGIN
    INSERT INTO pycs_trgm (pycs_trgm, rowid, number, pos_id, point_code) VALUES ('delete', old.id, old.number, old.pos_id, old.point_code);
END;
CREATE TRIGGER pycs_trgm_update AFTER UPDATE OF number, pos_id, point_code ON pycs BEGIN
    INSERT INTO pycs_trgm (pycs_trgm, rowid, number, pos_id, point_code) VALUES ('delete', old.id, old.number, old.pos_id, old.point_code);
    INSERT INTO pycs_trgm (rowid, number, pos_id, point_code) VALUES (new.id, new.number, new.pos_id, new.point_code);
END;
