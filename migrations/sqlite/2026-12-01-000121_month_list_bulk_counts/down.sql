DROP INDEX request_points_point_idx;
DROP INDEX pycs_deployed_idx;
