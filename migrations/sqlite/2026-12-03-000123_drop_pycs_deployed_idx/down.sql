CREATE INDEX pycs_deployed_idx ON pycs (deployed_at);
