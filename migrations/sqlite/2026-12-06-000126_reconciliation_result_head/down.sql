ALTER TABLE reconciliations DROP COLUMN result_head;
