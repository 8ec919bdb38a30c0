-- Each (point, partner) connection's first deployment, kept by triggers in the same
-- transaction as every change of a PYC's deployment time. The month list reads a
-- month of it in go-live order from its index, instead of proving "no earlier PYC of
-- this partner deployed this point" against the whole history on every download
-- (reports::month_query). A request's points are linked when it opens, before it has
-- a PYC, so a PYC's deployment is the only change that can move a first deployment.
CREATE TABLE first_deployments (
    point_id BIGINT NOT NULL,
    partner_id BIGINT NOT NULL,
    pyc_id BIGINT NOT NULL,
    deployed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (point_id, partner_id)
);

INSERT INTO first_deployments (point_id, partner_id, pyc_id, deployed_at)
SELECT rp.point_id, r.partner_id, y.id, y.deployed_at
FROM pycs y
CROSS JOIN requests r ON r.id = y.request_id
CROSS JOIN request_points rp ON rp.request_id = r.id
WHERE y.deployed_at IS NOT NULL
AND NOT EXISTS (
    SELECT 1 FROM request_points rp2 CROSS JOIN requests r2 CROSS JOIN pycs y2
    WHERE rp2.point_id = rp.point_id AND r2.id = rp2.request_id AND r2.partner_id = r.partner_id
    AND y2.request_id = r2.id
    AND (y2.deployed_at < y.deployed_at OR (y2.deployed_at = y.deployed_at AND y2.id < y.id))
);

-- The month in go-live order, as the workbook streams it.
CREATE INDEX first_deployments_month_idx ON first_deployments (deployed_at, pyc_id, point_id);

-- The PYC's points with its partner are worked out again from the history: a
-- deployment moved later (or cleared) hands the connection back to the next one.
-- Fires whenever `deployed_at` is set, changed or not, so that the insert trigger below
-- can hand a new row over to it (SQLite has no procedures to share the body with).
CREATE TRIGGER first_deployments_update AFTER UPDATE OF deployed_at ON pycs
BEGIN
    DELETE FROM first_deployments
    WHERE partner_id = (SELECT partner_id FROM requests WHERE id = NEW.request_id)
    AND point_id IN (SELECT point_id FROM request_points WHERE request_id = NEW.request_id);

    INSERT INTO first_deployments (point_id, partner_id, pyc_id, deployed_at)
    SELECT rp.point_id, r.partner_id, y.id, y.deployed_at
    FROM request_points mine
    CROSS JOIN requests me ON me.id = mine.request_id
    CROSS JOIN request_points rp ON rp.point_id = mine.point_id
    CROSS JOIN requests r ON r.id = rp.request_id AND r.partner_id = me.partner_id
    CROSS JOIN pycs y ON y.request_id = r.id
    WHERE mine.request_id = NEW.request_id AND y.deployed_at IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM request_points rp2 CROSS JOIN requests r2 CROSS JOIN pycs y2
        WHERE rp2.point_id = rp.point_id AND r2.id = rp2.request_id AND r2.partner_id = r.partner_id
        AND y2.request_id = r2.id
        AND (y2.deployed_at < y.deployed_at OR (y2.deployed_at = y.deployed_at AND y2.id < y.id))
    )
    ON CONFLICT (point_id, partner_id) DO UPDATE
    SET pyc_id = excluded.pyc_id, deployed_at = excluded.deployed_at
    WHERE excluded.deployed_at < first_deployments.deployed_at
    OR (excluded.deployed_at = first_deployments.deployed_at AND excluded.pyc_id < first_deployments.pyc_id);
END;

CREATE TRIGGER first_deployments_insert AFTER INSERT ON pycs
WHEN NEW.deployed_at IS NOT NULL
BEGIN
    UPDATE pycs SET deployed_at = NEW.deployed_at WHERE id = NEW.id;
END;
