-- Statements of one batch of owners (docs/migrating-an-owner.md). Every one takes the whole batch at once.

-- The reads of a batch come in pairs. `X` reads the rows (the dry run, and SQLite, where the
-- batch's BEGIN IMMEDIATE already holds the database's write lock). `lock_X` (PostgreSQL) locks the
-- same rows without waiting (SKIP LOCKED) and says of each whether it got the lock (`locked`): an
-- owner with a row another transaction holds is deferred, and never waits. The lock order is the
-- order of the statements in `compute_batch`: owners' users, projects, billing accounts,
-- organizations, environments, collaborators' users; each by primary key. Values come from the
-- locked row (its newest version), so nothing read can change before the batch commits.

-- name: owner_users
SELECT id, username, display_name, deleted_at IS NOT NULL AS deleted, TRUE AS locked
FROM users
WHERE id IN :owner_ids;

-- name: lock_owner_users
-- FOR UPDATE: a foreign-key insert takes FOR KEY SHARE on the row it references, which only FOR
-- UPDATE blocks, so a new organization or billing account of the owner waits for the batch.
WITH locked AS (
    SELECT id, username, display_name, deleted_at FROM users
    WHERE id IN :owner_ids ORDER BY id FOR UPDATE SKIP LOCKED
)
SELECT u.id, COALESCE(l.username, u.username) AS username, l.display_name,
       l.deleted_at IS NOT NULL AS deleted, l.id IS NOT NULL AS locked
FROM users u LEFT JOIN locked l ON l.id = u.id
WHERE u.id IN :owner_ids;

-- name: legacy_projects
SELECT id, owner_id, TRUE AS locked
FROM projects
WHERE owner_id IN :owner_ids AND organization_id IS NULL AND status <> 'deleted'
ORDER BY owner_id, id;

-- name: lock_legacy_projects
-- A project seen legacy but not locked (held, or changed meanwhile) defers its owner. New grants
-- and environments on a locked project wait for the batch (foreign keys, as above).
WITH locked AS (
    SELECT id, owner_id FROM projects
    WHERE owner_id IN :owner_ids AND organization_id IS NULL AND status <> 'deleted'
    ORDER BY id FOR UPDATE SKIP LOCKED
), seen AS (
    SELECT id, owner_id FROM projects
    WHERE owner_id IN :owner_ids AND organization_id IS NULL AND status <> 'deleted'
)
SELECT COALESCE(l.id, s.id) AS id, COALESCE(l.owner_id, s.owner_id) AS owner_id, l.id IS NOT NULL AS locked
FROM seen s FULL JOIN locked l ON l.id = s.id
ORDER BY 2, 1;

-- name: owner_billing_accounts
SELECT id, user_id, TRUE AS locked
FROM billing_accounts
WHERE user_id IN :owner_ids;

-- name: lock_owner_billing_accounts
WITH locked AS (
    SELECT id, user_id FROM billing_accounts WHERE user_id IN :owner_ids ORDER BY id FOR UPDATE SKIP LOCKED
), seen AS (
    SELECT id, user_id FROM billing_accounts WHERE user_id IN :owner_ids
)
SELECT COALESCE(l.id, s.id) AS id, COALESCE(l.user_id, s.user_id) AS user_id, l.id IS NOT NULL AS locked
FROM seen s FULL JOIN locked l ON l.id = s.id;

-- name: owned_organizations
SELECT id, owner_id, name, label, TRUE AS locked
FROM organizations
WHERE owner_id IN :owner_ids
ORDER BY owner_id, id;

-- name: lock_owned_organizations
-- FOR UPDATE: a billing account, member or project the platform adds to a reused organization
-- meanwhile waits for the batch (a second billing account would conflict with the one moving in).
WITH locked AS (
    SELECT id, owner_id, name, label FROM organizations
    WHERE owner_id IN :owner_ids ORDER BY id FOR UPDATE SKIP LOCKED
), seen AS (
    SELECT id, owner_id FROM organizations WHERE owner_id IN :owner_ids
)
SELECT COALESCE(l.id, s.id) AS id, COALESCE(l.owner_id, s.owner_id) AS owner_id, l.name, l.label,
       l.id IS NOT NULL AS locked
FROM seen s FULL JOIN locked l ON l.id = s.id
ORDER BY 2, 1;

-- name: project_environments
-- The moving projects with an environment another transaction holds: none for a read that does not
-- lock.
SELECT project_id FROM environments WHERE FALSE AND project_id IN :project_ids;

-- name: lock_project_environments
-- The moving projects with an environment another transaction holds (none, usually: only those
-- rows travel). FOR UPDATE: a new environment grant (a foreign key to the environment) waits for
-- the batch.
WITH locked AS (
    SELECT id FROM environments WHERE project_id IN :project_ids ORDER BY id FOR UPDATE SKIP LOCKED
)
SELECT DISTINCT e.project_id
FROM environments e
LEFT JOIN locked l ON l.id = e.id
WHERE e.project_id IN :project_ids AND l.id IS NULL;

-- name: collaborators
-- Of the users about to become members, those who cannot be added: the deleted ones (`deleted`);
-- a read that does not lock holds nobody.
SELECT id, TRUE AS deleted FROM users WHERE id IN :user_ids AND deleted_at IS NOT NULL;

-- name: lock_collaborators
-- Locks the active ones FOR SHARE: their soft deletion waits for the batch, while other batches and
-- the platform's foreign-key inserts (FOR KEY SHARE) go on. Returns those it could not lock: deleted
-- (as read) ones are not added; the others (held, or deleted meanwhile) defer the owners who would
-- add them. Deleted users are never locked, so a lock on one of them defers nobody.
WITH locked AS (
    SELECT id FROM users WHERE id IN :user_ids AND deleted_at IS NULL ORDER BY id FOR SHARE SKIP LOCKED
)
SELECT u.id, u.deleted_at IS NOT NULL AS deleted
FROM users u
LEFT JOIN locked l ON l.id = u.id
WHERE u.id IN :user_ids AND l.id IS NULL;

-- name: limit_waits
-- The batch's bounds, LOCAL to its transaction: a lock it must wait for (a unique name being
-- inserted by another transaction) fails after `lock_timeout`, any statement after
-- `statement_timeout`.
SELECT set_config('lock_timeout', :lock_timeout, true), set_config('statement_timeout', :statement_timeout, true);

-- name: limit_waits@sqlite
-- Nothing: SQLite waits for its write lock up to the connection's busy timeout.

-- name: sessions_waiting_on_us
-- Platform sessions waiting on a lock this transaction holds, just before it commits: the
-- health signal of a batch that held its locks too long.
SELECT COUNT(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid));

-- name: sessions_waiting_on_us@sqlite
-- Nothing to ask: SQLite has one writer.

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

-- name: access_of_projects
-- Per project with any grant: the digest of its access rows and its grantees (user ids,
-- comma-separated, a user once per grant; whether each is still active is `collaborators`'s to say,
-- once per user rather than once per grant). The digest is the SHA-256 (hex) of one line per grant,
-- `p|project|user|role` ordered by user, then `e|environment|user|role` ordered by environment and
-- user (docs/data-model.md); a project without grants is absent (its digest is that of nothing).
-- The database computes it, so a batch's grants never travel to the job row by row.
SELECT a.project_id,
       encode(sha256(convert_to(string_agg(a.line, '' ORDER BY a.environment_id NULLS FIRST, a.user_id), 'UTF8')),
              'hex') AS digest,
       string_agg(CAST(a.user_id AS TEXT), ',') AS grantees
FROM (
    SELECT pa.project_id, CAST(NULL AS BIGINT) AS environment_id, pa.user_id,
           'p|' || pa.project_id || '|' || pa.user_id || '|' || pa.role || chr(10) AS line
    FROM project_access pa
    WHERE pa.project_id IN :project_ids
    UNION ALL
    SELECT e.project_id, ea.environment_id, ea.user_id,
           'e|' || ea.environment_id || '|' || ea.user_id || '|' || ea.role || chr(10)
    FROM environments e
    JOIN environment_access ea ON ea.environment_id = e.id
    WHERE e.project_id IN :project_ids
) a
GROUP BY a.project_id;

-- name: access_of_projects@sqlite
-- SQLite has neither SHA-256 nor ordered aggregates: `access_digest(environment_id, user_id, line)`
-- is the job's own aggregate (store/dialect.py), the same digest as above. SQLite enforces foreign
-- keys only on connections that ask, so a platform writer may have left grants of users that do
-- not exist: they count for nothing, as they always have (PostgreSQL's foreign keys rule them out).
SELECT a.project_id,
       access_digest(a.environment_id, a.user_id, a.line) AS digest,
       group_concat(a.user_id, ',') AS grantees
FROM (
    SELECT pa.project_id, NULL AS environment_id, pa.user_id,
           'p|' || pa.project_id || '|' || pa.user_id || '|' || pa.role || char(10) AS line
    FROM project_access pa
    JOIN users u ON u.id = pa.user_id
    WHERE pa.project_id IN :project_ids
    UNION ALL
    SELECT e.project_id, ea.environment_id, ea.user_id,
           'e|' || ea.environment_id || '|' || ea.user_id || '|' || ea.role || char(10)
    FROM environments e
    JOIN environment_access ea ON ea.environment_id = e.id
    JOIN users u ON u.id = ea.user_id
    WHERE e.project_id IN :project_ids
) a
GROUP BY a.project_id;

-- name: organization_names_taken
SELECT name FROM organizations WHERE name IN :names;

-- name: insert_organization
-- The new organizations' ids come back with the insert: no second lookup by owner.
INSERT INTO organizations (name, label, owner_id, created_at)
SELECT t.name, t.label, t.owner_id, :now FROM ROWS t (name TEXT, label TEXT, owner_id BIGINT)
RETURNING id, owner_id;

-- The writes that the ledger records come in pairs: the platform write here, its ledger rows in
-- `record_X` (ledger.sql). On PostgreSQL one statement does both (a data-modifying WITH): the batch's
-- rows travel and are unnested once, and `record_X@postgresql` is empty.

-- name: insert_member
INSERT INTO organization_members (organization_id, user_id, created_at)
SELECT t.organization_id, t.user_id, :now FROM ROWS t (organization_id BIGINT, user_id BIGINT);

-- name: insert_member@postgresql
-- With `record_added_member`.
WITH t AS (
    SELECT * FROM ROWS t (organization_id BIGINT, user_id BIGINT, owner_id BIGINT)
), added AS (
    INSERT INTO organization_members (organization_id, user_id, created_at)
    SELECT t.organization_id, t.user_id, :now FROM t
)
INSERT INTO rollout_added_members (organization_id, user_id, owner_id, run_id)
SELECT t.organization_id, t.user_id, t.owner_id, :run_id FROM t
ON CONFLICT (organization_id, user_id) DO NOTHING;

-- name: insert_permission
INSERT INTO organization_member_permissions (organization_id, user_id, permission)
SELECT t.organization_id, t.user_id, t.permission FROM ROWS t (organization_id BIGINT, user_id BIGINT, permission TEXT);

-- name: insert_permission@postgresql
-- With `record_added_permission`.
WITH t AS (
    SELECT * FROM ROWS t (organization_id BIGINT, user_id BIGINT, permission TEXT, owner_id BIGINT)
), added AS (
    INSERT INTO organization_member_permissions (organization_id, user_id, permission)
    SELECT t.organization_id, t.user_id, t.permission FROM t
)
INSERT INTO rollout_added_permissions (organization_id, user_id, permission, owner_id, run_id)
SELECT t.organization_id, t.user_id, t.permission, t.owner_id, :run_id FROM t
ON CONFLICT (organization_id, user_id, permission) DO NOTHING;

-- name: move_projects
-- Each project into its owner's organization; one moved or re-owned meanwhile is not touched (the
-- caller compares the count).
UPDATE projects SET organization_id = t.organization_id
FROM ROWS t (project_id TEXT, owner_id BIGINT, organization_id BIGINT)
WHERE projects.id = t.project_id AND projects.owner_id = t.owner_id AND projects.organization_id IS NULL;

-- name: move_projects@postgresql
-- With `record_moved_project`, for the projects moved: the count is the same. The bounds on
-- `projects.owner_id` (the batch's owners') keep a plan that walks the owner index in step with the
-- batch from reading it from its start: without them the read grows with every batch of the run.
WITH t AS (
    SELECT * FROM ROWS t (project_id TEXT, owner_id BIGINT, organization_id BIGINT, access_digest TEXT)
), moved AS (
    UPDATE projects SET organization_id = t.organization_id
    FROM t
    WHERE projects.id = t.project_id AND projects.owner_id = t.owner_id AND projects.organization_id IS NULL
      AND projects.owner_id BETWEEN (SELECT MIN(owner_id) FROM t) AND (SELECT MAX(owner_id) FROM t)
    RETURNING projects.id
)
INSERT INTO rollout_moved_projects (project_id, owner_id, organization_id, run_id, access_digest)
SELECT t.project_id, t.owner_id, t.organization_id, :run_id, t.access_digest
FROM t JOIN moved ON moved.id = t.project_id
ON CONFLICT (project_id) DO UPDATE SET
    owner_id = excluded.owner_id, organization_id = excluded.organization_id,
    run_id = excluded.run_id, access_digest = excluded.access_digest;

-- name: move_billing_accounts
UPDATE billing_accounts SET organization_id = t.organization_id, user_id = NULL
FROM ROWS t (billing_account_id BIGINT, owner_id BIGINT, organization_id BIGINT)
WHERE billing_accounts.id = t.billing_account_id AND billing_accounts.user_id = t.owner_id;
