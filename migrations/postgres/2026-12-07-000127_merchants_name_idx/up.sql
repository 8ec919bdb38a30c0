-- The merchant list with no search reads its page in this order (name, then id for
-- names given twice) instead of sorting every merchant on each request.
CREATE INDEX merchants_name_idx ON merchants (name, id);
