-- A reconciliation's outcome, JSON compressed with zstd: at a million lines the JSON
-- is 260 MB, and writing it as text took longer than the matching. Outcomes saved
-- before keep their text in `result`.
ALTER TABLE reconciliations ADD COLUMN result_zst BLOB;
