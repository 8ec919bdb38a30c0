-- Migration 121 indexed PYCs by deployment time for the month list's old anti join
-- over the whole history. The month list now reads first_deployments (migration 122),
-- so no query walks this index and every PYC write paid for it.
DROP INDEX pycs_deployed_idx;
