ALTER TABLE reconciliations DROP COLUMN result_zst;
