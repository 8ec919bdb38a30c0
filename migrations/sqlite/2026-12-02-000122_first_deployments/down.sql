DROP TRIGGER first_deployments_update;
DROP TRIGGER first_deployments_insert;
DROP TABLE first_deployments;
