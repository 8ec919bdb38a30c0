-- The claim reads due jobs in (run_at, id) order with a LIMIT; with the index in
-- that order PostgreSQL walks the first rows instead of sorting every pending job
-- (13 ms a claim at 20,000 pending, 0.15 ms with it).
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (run_at, id) WHERE done_at IS NULL AND dead_at IS NULL;
-- No query of the app filters jobs by kind; every version of every job row paid for
-- this index (enqueue, claim, outcome).
DROP INDEX jobs_kind_idx;
