-- Statements of one batch of owners (docs/migrating-an-owner.md). Every one takes the whole batch at once.

-- name: legacy_projects
-- The legacy projects of a batch of owners (read-only: the dry run).
SELECT id, owner_id
FROM projects
WHERE owner_id IN :owner_ids AND organization_id IS NULL AND status <> 'deleted'
ORDER BY owner_id, id;

-- name: lock_projects
-- The same rows, locked until the batch commits so that a concurrent change of ownership or
-- status waits for us; NOWAIT is not used: the platform's writes are short.
SELECT id, owner_id
FROM projects
WHERE owner_id IN :owner_ids AND organization_id IS NULL AND status <> 'deleted'
ORDER BY owner_id, id
FOR UPDATE;

-- name: lock_projects@sqlite
-- SQLite has no row locks; the batch's BEGIN IMMEDIATE already holds the database's write lock.
SELECT id, owner_id
FROM projects
WHERE owner_id IN :owner_ids AND organization_id IS NULL AND status <> 'deleted'
ORDER BY owner_id, id;

-- name: owner_users
SELECT id, username, display_name, deleted_at IS NOT NULL AS deleted
FROM users
WHERE id IN :owner_ids;

-- name: owned_organizations
SELECT id, owner_id, name, label
FROM organizations
WHERE owner_id IN :owner_ids
ORDER BY owner_id, id;

-- name: owner_billing_accounts
SELECT id, user_id
FROM billing_accounts
WHERE user_id IN :owner_ids;

-- name: organization_billing_accounts
SELECT id, organization_id
FROM billing_accounts
WHERE organization_id IN :organization_ids;

-- name: organization_members_of
SELECT organization_id, user_id
FROM organization_members
WHERE organization_id IN :organization_ids;

-- name: member_permissions_of
SELECT organization_id, user_id, permission
FROM organization_member_permissions
WHERE organization_id IN :organization_ids AND user_id IN :user_ids;

-- name: project_access_of
-- Access rows of the moving projects, with whether the grantee is still an active user.
SELECT pa.project_id, pa.user_id, pa.role, u.deleted_at IS NULL AS active
FROM project_access pa
JOIN users u ON u.id = pa.user_id
WHERE pa.project_id IN :project_ids
ORDER BY pa.project_id, pa.user_id;

-- name: environment_access_of
SELECT e.project_id, ea.environment_id, ea.user_id, ea.role, u.deleted_at IS NULL AS active
FROM environments e
JOIN environment_access ea ON ea.environment_id = e.id
JOIN users u ON u.id = ea.user_id
WHERE e.project_id IN :project_ids
ORDER BY e.project_id, ea.environment_id, ea.user_id;

-- name: organization_names_taken
SELECT name FROM organizations WHERE name IN :names;

-- name: insert_organization
INSERT INTO organizations (name, label, owner_id, created_at)
SELECT t.name, t.label, t.owner_id, :now FROM ROWS t (name TEXT, label TEXT, owner_id BIGINT);

-- name: organizations_of_owners
SELECT id, owner_id FROM organizations WHERE owner_id IN :owner_ids;

-- name: insert_member
INSERT INTO organization_members (organization_id, user_id, created_at)
SELECT t.organization_id, t.user_id, :now FROM ROWS t (organization_id BIGINT, user_id BIGINT);

-- name: insert_permission
INSERT INTO organization_member_permissions (organization_id, user_id, permission)
SELECT t.organization_id, t.user_id, t.permission FROM ROWS t (organization_id BIGINT, user_id BIGINT, permission TEXT);

-- name: move_projects
-- Each project into its owner's organization; one moved or re-owned meanwhile is not touched (the
-- caller compares the count).
UPDATE projects SET organization_id = t.organization_id
FROM ROWS t (project_id TEXT, owner_id BIGINT, organization_id BIGINT)
WHERE projects.id = t.project_id AND projects.owner_id = t.owner_id AND projects.organization_id IS NULL;

-- name: move_billing_accounts
UPDATE billing_accounts SET organization_id = t.organization_id, user_id = NULL
FROM ROWS t (billing_account_id BIGINT, owner_id BIGINT, organization_id BIGINT)
WHERE billing_accounts.id = t.billing_account_id AND billing_accounts.user_id = t.owner_id;
