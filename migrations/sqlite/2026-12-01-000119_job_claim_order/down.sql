CREATE INDEX jobs_kind_idx ON jobs (kind);
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (run_at) WHERE done_at IS NULL AND dead_at IS NULL;
