-- The month list of connected points: the PYCs deployed in a month, and for each of
-- its points the earlier deployments of the same point (reports::MONTH_FROM).
CREATE INDEX pycs_deployed_idx ON pycs (deployed_at);
CREATE INDEX request_points_point_idx ON request_points (point_id, request_id);
