-- Merchants and points are found by their folded name; without a unique key two people
-- opening requests at once made two of each. Rows duplicated before are merged into
-- the oldest, with everything that pointed at them.
CREATE TEMP TABLE merchant_map AS
    SELECT m.id AS old_id, (SELECT MIN(k.id) FROM merchants k WHERE k.search_key = m.search_key) AS new_id
    FROM merchants m;
DELETE FROM merchant_map WHERE old_id = new_id;
UPDATE points SET merchant_id = (SELECT new_id FROM merchant_map WHERE old_id = points.merchant_id)
    WHERE merchant_id IN (SELECT old_id FROM merchant_map);
UPDATE requests SET merchant_id = (SELECT new_id FROM merchant_map WHERE old_id = requests.merchant_id)
    WHERE merchant_id IN (SELECT old_id FROM merchant_map);
UPDATE businesses SET hub_merchant_id = (SELECT new_id FROM merchant_map WHERE old_id = businesses.hub_merchant_id)
    WHERE hub_merchant_id IN (SELECT old_id FROM merchant_map);
DELETE FROM merchants WHERE id IN (SELECT old_id FROM merchant_map);
DROP TABLE merchant_map;

CREATE TEMP TABLE point_map AS
    SELECT p.id AS old_id,
           (SELECT MIN(q.id) FROM points q WHERE q.merchant_id = p.merchant_id AND q.search_key = p.search_key) AS new_id
    FROM points p;
DELETE FROM point_map WHERE old_id = new_id;
INSERT INTO request_points (request_id, point_id)
    SELECT rp.request_id, pm.new_id FROM request_points rp JOIN point_map pm ON pm.old_id = rp.point_id ON CONFLICT DO NOTHING;
DELETE FROM request_points WHERE point_id IN (SELECT old_id FROM point_map);
DELETE FROM points WHERE id IN (SELECT old_id FROM point_map);
DROP TABLE point_map;

DROP INDEX merchants_search_idx;
CREATE UNIQUE INDEX merchants_search_key_unique ON merchants (search_key);
DROP INDEX points_merchant_idx;
CREATE UNIQUE INDEX points_merchant_key_unique ON points (merchant_id, search_key);
