DROP TRIGGER first_deployments_update ON pycs;
DROP TRIGGER first_deployments_insert ON pycs;
DROP FUNCTION first_deployments_updated();
DROP FUNCTION first_deployments_inserted();
DROP FUNCTION first_deployments_redo(BIGINT[]);
DROP TABLE first_deployments;
