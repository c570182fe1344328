-- The invariants (docs/invariants.md), each a set-based query returning the violations, for every owner the
-- job migrated (or only those of one wave: CAST(:wave AS TEXT) IS NULL means all).

-- name: verify_one_organization
-- 1. the owner owns exactly one organization, the one recorded...
-- `other_id` and `other_created_at` are the newest other organization's.
SELECT r.owner_id, COUNT(o.id) AS organizations, MAX(CASE WHEN o.id = r.organization_id THEN 1 ELSE 0 END) AS recorded,
       (SELECT x.id FROM organizations x WHERE x.owner_id = r.owner_id AND x.id <> r.organization_id
        ORDER BY x.created_at DESC, x.id DESC LIMIT 1) AS other_id,
       (SELECT x.created_at FROM organizations x WHERE x.owner_id = r.owner_id AND x.id <> r.organization_id
        ORDER BY x.created_at DESC, x.id DESC LIMIT 1) AS other_created_at
FROM rollout_owners r
LEFT JOIN organizations o ON o.owner_id = r.owner_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave)
GROUP BY r.owner_id, r.organization_id
HAVING COUNT(o.id) <> 1 OR MAX(CASE WHEN o.id = r.organization_id THEN 1 ELSE 0 END) = 0
ORDER BY r.owner_id;

-- name: verify_owner_permissions
-- 1. ...and is a member of it with all four permissions.
SELECT r.owner_id, COUNT(DISTINCT p.permission) AS permissions, COUNT(m.user_id) AS memberships
FROM rollout_owners r
LEFT JOIN organization_members m ON m.organization_id = r.organization_id AND m.user_id = r.owner_id
LEFT JOIN organization_member_permissions p
       ON p.organization_id = r.organization_id AND p.user_id = r.owner_id
      AND p.permission IN ('plans', 'billing', 'projects:create', 'members')
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave)
GROUP BY r.owner_id
HAVING COUNT(DISTINCT p.permission) < 4 OR COUNT(m.user_id) = 0
ORDER BY r.owner_id;

-- name: verify_projects_moved
-- 2. every non-deleted project of the owner is in that organization. `moved` says the job moved the
-- project (someone moved it since); `created_at` and `migrated_at` date a project that came later.
SELECT r.owner_id, p.id AS project_id, p.organization_id, p.created_at, r.migrated_at,
       m.project_id IS NOT NULL AS moved
FROM rollout_owners r
JOIN projects p ON p.owner_id = r.owner_id AND p.status <> 'deleted'
LEFT JOIN rollout_moved_projects m ON m.project_id = p.id AND m.owner_id = r.owner_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave)
  AND (p.organization_id IS NULL OR p.organization_id <> r.organization_id)
ORDER BY r.owner_id, p.id;

-- name: verify_members
-- 3. every non-deleted user with access to those projects is a member. `moved`: the job moved the
-- project; `added`: the job made that user a member once (someone removed the membership since).
SELECT DISTINCT r.owner_id, a.user_id, a.project_id,
       EXISTS (SELECT 1 FROM rollout_moved_projects mp WHERE mp.project_id = a.project_id) AS moved,
       EXISTS (SELECT 1 FROM rollout_added_members am
               WHERE am.organization_id = r.organization_id AND am.user_id = a.user_id) AS added
FROM rollout_owners r
JOIN projects p ON p.owner_id = r.owner_id AND p.status <> 'deleted'
JOIN (
    SELECT project_id, user_id FROM project_access
    UNION
    SELECT e.project_id, ea.user_id FROM environment_access ea JOIN environments e ON e.id = ea.environment_id
) a ON a.project_id = p.id
JOIN users u ON u.id = a.user_id AND u.deleted_at IS NULL
LEFT JOIN organization_members m ON m.organization_id = r.organization_id AND m.user_id = a.user_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave) AND m.user_id IS NULL
ORDER BY r.owner_id, a.user_id, a.project_id;

-- name: verify_no_other_permissions
-- 4. no member other than the owner holds any permission. `granted`: the job recorded granting it.
SELECT r.owner_id, mp.user_id, mp.permission,
       EXISTS (SELECT 1 FROM rollout_added_permissions ap
               WHERE ap.organization_id = mp.organization_id AND ap.user_id = mp.user_id
                 AND ap.permission = mp.permission) AS granted
FROM rollout_owners r
JOIN organization_member_permissions mp ON mp.organization_id = r.organization_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave) AND mp.user_id <> r.owner_id
ORDER BY r.owner_id, mp.user_id, mp.permission;

-- name: moved_projects_page
-- 5. (read side) the projects the job moved, with the digest of their access rows at the time.
SELECT m.project_id, m.owner_id, m.access_digest
FROM rollout_moved_projects m
JOIN rollout_owners r ON r.owner_id = m.owner_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave) AND m.project_id > :after
ORDER BY m.project_id
LIMIT :page_size;

-- name: verify_billing
-- 6. the owner's billing account, if any, belongs to the organization: the one the job moved is
-- still there, and no billing account is left on the user.
SELECT r.owner_id, b.id AS billing_account_id, b.user_id, b.organization_id
FROM rollout_owners r
JOIN billing_accounts b ON b.id = r.billing_account_id OR b.user_id = r.owner_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave)
  AND (b.user_id IS NOT NULL OR b.organization_id <> r.organization_id)
ORDER BY r.owner_id;

-- name: verify_billing_recorded_missing
SELECT r.owner_id, r.billing_account_id
FROM rollout_owners r
LEFT JOIN billing_accounts b ON b.id = r.billing_account_id
WHERE r.state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR r.wave = :wave)
  AND r.billing_account_id IS NOT NULL AND b.id IS NULL
ORDER BY r.owner_id;

-- name: migrated_owner_count
SELECT COUNT(*) FROM rollout_owners
WHERE state = 'migrated' AND (CAST(:wave AS TEXT) IS NULL OR wave = :wave);
