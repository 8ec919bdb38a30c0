-- The inbox lists the newest mail first: read in this index's order, a page stops
-- after its rows instead of sorting every message.
CREATE INDEX mail_messages_newest_idx ON mail_messages (created_at, id);
-- The request search matches `LIKE '%…%'` on names (folded), phones and codes: a
-- trigram index answers such a pattern without reading every merchant, point and PYC.
-- pg_trgm ships with PostgreSQL and is a trusted extension (the database's owner may
-- create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX merchants_search_trgm_idx ON merchants USING gin (search_key gin_trgm_ops);
CREATE INDEX merchants_phone_trgm_idx ON merchants USING gin (phone_key gin_trgm_ops);
CREATE INDEX points_search_trgm_idx ON points USING gin (search_key gin_trgm_ops);
CREATE INDEX points_pos_trgm_idx ON points USING gin (lower(pos_id) gin_trgm_ops);
CREATE INDEX points_code_trgm_idx ON points USING gin (lower(point_code) gin_trgm_ops);
CREATE INDEX pycs_number_trgm_idx ON pycs USING gin (lower(number) gin_trgm_ops);
CREATE INDEX pycs_pos_trgm_idx ON pycs USING gin (lower(pos_id) gin_trgm_ops);
CREATE INDEX pycs_code_trgm_idx ON pycs USING gin (lower(point_code) gin_trgm_ops);
-- The names the search reads on both backends (on SQLite, FTS5 tables): rowid is the
-- row's id; the codes are lower-cased here, where the indexes above are.
CREATE VIEW merchants_trgm AS SELECT id AS rowid, search_key, phone_key FROM merchants;
CREATE VIEW points_trgm AS
    SELECT id AS rowid, search_key, lower(pos_id) AS pos_id, lower(point_code) AS point_code FROM points;
CREATE VIEW pycs_trgm AS
    SELECT id AS rowid, lower(number) AS number, lower(pos_id) AS pos_id, lower(point_code) AS point_code FROM pycs;
