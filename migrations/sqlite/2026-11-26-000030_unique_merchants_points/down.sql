DROP INDEX points_merchant_key_unique;
CREATE INDEX points_merchant_idx ON points (merchant_id);
DROP INDEX merchants_search_key_unique;
CREATE INDEX merchants_search_idx ON merchants (search_key);
