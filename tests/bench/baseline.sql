-- The yardstick: the same migration as the fastest set-based SQL we can write, in one transaction,
-- with no checkpoints, no report, no locks skipped and simplified naming (the slug folded in SQL,
-- made unique with the user id). Every statement reads only the rows of the owners that move
-- (their projects, and those projects' grants and environments), each through an index, as the
-- job does. `make bench` times it against `rollout run` on a copy of the same data.

CREATE TEMP TABLE bench_targets AS
SELECT u.id AS owner_id,
       trim(both '-' from regexp_replace(lower(u.username), '[^a-z0-9]+', '-', 'g')) || '-' || u.id AS name,
       COALESCE(NULLIF(trim(u.display_name), ''), u.username) AS label,
       o.id AS existing
FROM (SELECT DISTINCT owner_id FROM projects WHERE organization_id IS NULL AND status <> 'deleted') l
JOIN users u ON u.id = l.owner_id AND u.deleted_at IS NULL
LEFT JOIN LATERAL (
    SELECT MIN(id) AS id, COUNT(*) AS n FROM organizations WHERE owner_id = u.id
) o ON true
WHERE o.n < 2;

-- An owner whose organization already has a billing account, and who has one too, is blocked.
DELETE FROM bench_targets t
WHERE t.existing IS NOT NULL
  AND EXISTS (SELECT 1 FROM billing_accounts b WHERE b.organization_id = t.existing)
  AND EXISTS (SELECT 1 FROM billing_accounts b WHERE b.user_id = t.owner_id);

CREATE TEMP TABLE bench_moving AS
SELECT p.id AS project_id, p.owner_id
FROM bench_targets t
JOIN projects p ON p.owner_id = t.owner_id AND p.organization_id IS NULL AND p.status <> 'deleted';

WITH created AS (
    INSERT INTO organizations (name, label, owner_id, created_at)
    SELECT name, label, owner_id, now() FROM bench_targets WHERE existing IS NULL
    RETURNING id, owner_id
)
UPDATE bench_targets t SET existing = c.id FROM created c WHERE c.owner_id = t.owner_id;

ANALYZE bench_targets;
ANALYZE bench_moving;

-- The owner, and every active user with access to a moving project or one of its environments.
INSERT INTO organization_members (organization_id, user_id, created_at)
SELECT t.existing, a.user_id, now()
FROM (
    SELECT owner_id, owner_id AS user_id FROM bench_targets
    UNION
    SELECT m.owner_id, pa.user_id FROM bench_moving m JOIN project_access pa ON pa.project_id = m.project_id
    UNION
    SELECT m.owner_id, ea.user_id
    FROM bench_moving m
    JOIN environments e ON e.project_id = m.project_id
    JOIN environment_access ea ON ea.environment_id = e.id
) a
JOIN bench_targets t ON t.owner_id = a.owner_id
JOIN users u ON u.id = a.user_id AND u.deleted_at IS NULL
ON CONFLICT DO NOTHING;

INSERT INTO organization_member_permissions (organization_id, user_id, permission)
SELECT t.existing, t.owner_id, perm.permission
FROM bench_targets t
CROSS JOIN (VALUES ('plans'), ('billing'), ('projects:create'), ('members')) AS perm (permission)
ON CONFLICT DO NOTHING;

UPDATE projects p SET organization_id = t.existing
FROM bench_moving m
JOIN bench_targets t ON t.owner_id = m.owner_id
WHERE p.id = m.project_id;

UPDATE billing_accounts b SET organization_id = t.existing, user_id = NULL
FROM bench_targets t
WHERE b.user_id = t.owner_id;
