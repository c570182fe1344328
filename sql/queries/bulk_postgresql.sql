-- PostgreSQL forms of the statements a batch runs once per row of its result (see
-- rollout/dialect.py `execute_rows`): each takes one array per column, plus the values shared by
-- every row (now, run_id, wave) as plain parameters, and inserts every row of the batch in one
-- statement, where SQLite runs the plain form with executemany.

-- name: insert_organization@postgresql
INSERT INTO organizations (name, label, owner_id, created_at)
SELECT t.name, t.label, t.owner_id, CAST(:now AS TIMESTAMPTZ)
FROM unnest(CAST(:name AS TEXT[]), CAST(:label AS TEXT[]), CAST(:owner_id AS BIGINT[])) AS t (name, label, owner_id);

-- name: insert_member@postgresql
INSERT INTO organization_members (organization_id, user_id, created_at)
SELECT t.organization_id, t.user_id, CAST(:now AS TIMESTAMPTZ)
FROM unnest(CAST(:organization_id AS BIGINT[]), CAST(:user_id AS BIGINT[])) AS t (organization_id, user_id);

-- name: insert_permission@postgresql
INSERT INTO organization_member_permissions (organization_id, user_id, permission)
SELECT * FROM unnest(CAST(:organization_id AS BIGINT[]), CAST(:user_id AS BIGINT[]), CAST(:permission AS TEXT[]));

-- name: record_added_member@postgresql
INSERT INTO rollout_added_members (organization_id, user_id, owner_id, run_id)
SELECT t.organization_id, t.user_id, t.owner_id, CAST(:run_id AS TEXT)
FROM unnest(CAST(:organization_id AS BIGINT[]), CAST(:user_id AS BIGINT[]), CAST(:owner_id AS BIGINT[]))
     AS t (organization_id, user_id, owner_id);

-- name: record_added_permission@postgresql
INSERT INTO rollout_added_permissions (organization_id, user_id, permission, owner_id, run_id)
SELECT t.organization_id, t.user_id, t.permission, t.owner_id, CAST(:run_id AS TEXT)
FROM unnest(CAST(:organization_id AS BIGINT[]), CAST(:user_id AS BIGINT[]), CAST(:permission AS TEXT[]),
            CAST(:owner_id AS BIGINT[])) AS t (organization_id, user_id, permission, owner_id);

-- name: record_moved_project@postgresql
INSERT INTO rollout_moved_projects (project_id, owner_id, organization_id, run_id, access_digest)
SELECT t.project_id, t.owner_id, t.organization_id, CAST(:run_id AS TEXT), t.access_digest
FROM unnest(CAST(:project_id AS TEXT[]), CAST(:owner_id AS BIGINT[]), CAST(:organization_id AS BIGINT[]),
            CAST(:access_digest AS TEXT[])) AS t (project_id, owner_id, organization_id, access_digest);

-- name: record_migrated_owner@postgresql
INSERT INTO rollout_owners (owner_id, state, wave, run_id, organization_id, organization_name,
                            organization_created, billing_account_id, reason, error, attempts,
                            migrated_at, updated_at)
SELECT t.owner_id, 'migrated', CAST(:wave AS TEXT), CAST(:run_id AS TEXT), t.organization_id, t.organization_name,
       t.organization_created, t.billing_account_id, NULL, NULL, 0, CAST(:now AS TIMESTAMPTZ),
       CAST(:now AS TIMESTAMPTZ)
FROM unnest(CAST(:owner_id AS BIGINT[]), CAST(:organization_id AS BIGINT[]), CAST(:organization_name AS TEXT[]),
            CAST(:organization_created AS BOOLEAN[]), CAST(:billing_account_id AS BIGINT[]))
     AS t (owner_id, organization_id, organization_name, organization_created, billing_account_id)
ON CONFLICT (owner_id) DO UPDATE SET
    state = 'migrated',
    wave = CASE WHEN rollout_owners.state = 'migrated' THEN rollout_owners.wave ELSE excluded.wave END,
    run_id = excluded.run_id,
    organization_id = excluded.organization_id,
    organization_name = excluded.organization_name,
    organization_created = CASE WHEN rollout_owners.state = 'migrated'
        THEN (rollout_owners.organization_created OR excluded.organization_created)
        ELSE excluded.organization_created END,
    billing_account_id = CASE WHEN rollout_owners.state = 'migrated'
        THEN COALESCE(rollout_owners.billing_account_id, excluded.billing_account_id)
        ELSE excluded.billing_account_id END,
    reason = NULL,
    error = NULL,
    attempts = 0,
    migrated_at = CASE WHEN rollout_owners.state = 'migrated' THEN rollout_owners.migrated_at ELSE excluded.migrated_at END,
    updated_at = excluded.updated_at;

-- name: record_blocked_owner@postgresql
INSERT INTO rollout_owners (owner_id, state, wave, run_id, reason, updated_at)
SELECT t.owner_id, 'blocked', CAST(:wave AS TEXT), CAST(:run_id AS TEXT), t.reason, CAST(:now AS TIMESTAMPTZ)
FROM unnest(CAST(:owner_id AS BIGINT[]), CAST(:reason AS TEXT[])) AS t (owner_id, reason)
ON CONFLICT (owner_id) DO UPDATE SET
    state = CASE WHEN rollout_owners.state = 'migrated' THEN 'migrated' ELSE 'blocked' END,
    reason = excluded.reason,
    run_id = excluded.run_id,
    updated_at = excluded.updated_at;

-- name: move_projects@postgresql
-- A join on the batch's (project, organization) pairs rather than a subquery per project.
UPDATE projects p SET organization_id = t.organization_id
FROM unnest(CAST(:project_ids AS TEXT[]), CAST(:project_organizations AS BIGINT[])) AS t (project_id, organization_id)
WHERE p.id = t.project_id AND p.organization_id IS NULL;

-- name: move_billing_accounts@postgresql
UPDATE billing_accounts b SET organization_id = t.organization_id, user_id = NULL
FROM unnest(CAST(:billing_account_ids AS BIGINT[]), CAST(:billing_organizations AS BIGINT[]))
     AS t (billing_account_id, organization_id)
WHERE b.id = t.billing_account_id AND b.user_id IS NOT NULL;
