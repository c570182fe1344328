-- The yardstick of the naming rules: the same migration as a few set-based statements in one transaction,
-- with no checkpoints, no report and simplified naming (the slug folded in SQL, made unique with
-- the user id). `make bench` times it against `rollout run` on a copy of the same data.

CREATE TEMP TABLE bench_targets AS
SELECT u.id AS owner_id,
       trim(both '-' from regexp_replace(lower(u.username), '[^a-z0-9]+', '-', 'g')) || '-' || u.id AS name,
       COALESCE(NULLIF(trim(u.display_name), ''), u.username) AS label,
       (SELECT MIN(o.id) FROM organizations o WHERE o.owner_id = u.id) AS existing
FROM users u
WHERE u.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM projects p WHERE p.owner_id = u.id AND p.organization_id IS NULL AND p.status <> 'deleted')
  AND (SELECT COUNT(*) FROM organizations o WHERE o.owner_id = u.id) < 2;

DELETE FROM bench_targets t
WHERE t.existing IS NOT NULL
  AND EXISTS (SELECT 1 FROM billing_accounts b WHERE b.organization_id = t.existing)
  AND EXISTS (SELECT 1 FROM billing_accounts b WHERE b.user_id = t.owner_id);

INSERT INTO organizations (name, label, owner_id, created_at)
SELECT name, label, owner_id, now() FROM bench_targets WHERE existing IS NULL;

UPDATE bench_targets t SET existing = o.id FROM organizations o WHERE t.existing IS NULL AND o.owner_id = t.owner_id;

INSERT INTO organization_members (organization_id, user_id, created_at)
SELECT DISTINCT t.existing, a.user_id, now()
FROM bench_targets t
JOIN projects p ON p.owner_id = t.owner_id AND p.organization_id IS NULL AND p.status <> 'deleted'
JOIN (
    SELECT project_id, user_id FROM project_access
    UNION SELECT e.project_id, ea.user_id FROM environment_access ea JOIN environments e ON e.id = ea.environment_id
    UNION SELECT id, owner_id FROM projects
) a ON a.project_id = p.id
JOIN users u ON u.id = a.user_id AND u.deleted_at IS NULL
ON CONFLICT DO NOTHING;

INSERT INTO organization_member_permissions (organization_id, user_id, permission)
SELECT t.existing, t.owner_id, perm.permission
FROM bench_targets t
CROSS JOIN (VALUES ('plans'), ('billing'), ('projects:create'), ('members')) AS perm (permission)
ON CONFLICT DO NOTHING;

UPDATE projects p SET organization_id = t.existing
FROM bench_targets t
WHERE p.owner_id = t.owner_id AND p.organization_id IS NULL AND p.status <> 'deleted';

UPDATE billing_accounts b SET organization_id = t.existing, user_id = NULL
FROM bench_targets t
WHERE b.user_id = t.owner_id;
