-- The invariants (docs/invariants.md), each a set-based query returning the violations, for a page
-- of the owners the job migrated (:owner_ids).

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
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids
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
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids
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
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids
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
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids AND m.user_id IS NULL
ORDER BY r.owner_id, a.user_id, a.project_id;

-- name: verify_no_other_permissions
-- 4. no member other than the owner holds any permission. `granted`: the job recorded granting it.
SELECT r.owner_id, mp.user_id, mp.permission,
       EXISTS (SELECT 1 FROM rollout_added_permissions ap
               WHERE ap.organization_id = mp.organization_id AND ap.user_id = mp.user_id
                 AND ap.permission = mp.permission) AS granted
FROM rollout_owners r
JOIN organization_member_permissions mp ON mp.organization_id = r.organization_id
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids AND mp.user_id <> r.owner_id
ORDER BY r.owner_id, mp.user_id, mp.permission;

-- name: moved_projects_of
-- 5. (read side) the projects the job moved for these owners, with the digest of their access
-- rows at the time.
SELECT m.project_id, m.owner_id, m.access_digest
FROM rollout_moved_projects m
JOIN rollout_owners r ON r.owner_id = m.owner_id
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids
ORDER BY m.project_id;

-- name: verify_billing
-- 6. the owner's billing account, if any, belongs to the organization: the one the job moved is
-- still there, and no billing account is left on the user.
SELECT r.owner_id, b.id AS billing_account_id, b.user_id, b.organization_id
FROM rollout_owners r
JOIN billing_accounts b ON b.id = r.billing_account_id OR b.user_id = r.owner_id
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids
  AND (b.user_id IS NOT NULL OR b.organization_id <> r.organization_id)
ORDER BY r.owner_id;

-- name: verify_billing_recorded_missing
SELECT r.owner_id, r.billing_account_id
FROM rollout_owners r
LEFT JOIN billing_accounts b ON b.id = r.billing_account_id
WHERE r.state = 'migrated' AND r.owner_id IN :owner_ids
  AND r.billing_account_id IS NOT NULL AND b.id IS NULL
ORDER BY r.owner_id;

-- name: verify_organization_names
-- 7. every organization the job created is named by the rule's shape (the rest of the rule, the
-- name's base, is checked in Python against the owner's username).
SELECT r.owner_id, o.id AS organization_id, o.name, u.username
FROM rollout_owners r
JOIN organizations o ON o.id = r.organization_id
JOIN users u ON u.id = r.owner_id
WHERE r.state = 'migrated' AND r.organization_created AND r.owner_id IN :owner_ids
ORDER BY r.owner_id;
