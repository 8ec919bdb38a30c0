-- A confirmed statement is imported by the worker a chunk at a time: how many rows it
-- has, how many are stored (the page's progress bar; a retried job resumes there), and
-- why an import failed.
ALTER TABLE statement_imports ADD COLUMN total_rows BIGINT NOT NULL DEFAULT 0;
ALTER TABLE statement_imports ADD COLUMN done_rows BIGINT NOT NULL DEFAULT 0;
ALTER TABLE statement_imports ADD COLUMN error TEXT;
