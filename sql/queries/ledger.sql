-- The job's checkpoints: runs, owner states, what was done for each owner, the batch history.

-- name: record_moved_project
-- A project moved again (someone set it back to legacy by hand since) is recorded as it is now.
INSERT INTO rollout_moved_projects (project_id, owner_id, organization_id, run_id, access_digest)
SELECT t.project_id, t.owner_id, t.organization_id, :run_id, t.access_digest
FROM ROWS t (project_id TEXT, owner_id BIGINT, organization_id BIGINT, access_digest TEXT)
WHERE true
ON CONFLICT (project_id) DO UPDATE SET
    owner_id = excluded.owner_id, organization_id = excluded.organization_id,
    run_id = excluded.run_id, access_digest = excluded.access_digest;

-- name: record_moved_project@postgresql
-- Nothing: `move_projects` records them in the same statement (migration.sql).

-- name: record_added_member
-- A membership the platform removed and a sweep added again stays recorded once.
INSERT INTO rollout_added_members (organization_id, user_id, owner_id, run_id)
SELECT t.organization_id, t.user_id, t.owner_id, :run_id
FROM ROWS t (organization_id BIGINT, user_id BIGINT, owner_id BIGINT)
WHERE true
ON CONFLICT (organization_id, user_id) DO NOTHING;

-- name: record_added_member@postgresql
-- Nothing: `insert_member` records them in the same statement (migration.sql).

-- name: record_added_permission
INSERT INTO rollout_added_permissions (organization_id, user_id, permission, owner_id, run_id)
SELECT t.organization_id, t.user_id, t.permission, t.owner_id, :run_id
FROM ROWS t (organization_id BIGINT, user_id BIGINT, permission TEXT, owner_id BIGINT)
WHERE true
ON CONFLICT (organization_id, user_id, permission) DO NOTHING;

-- name: record_added_permission@postgresql
-- Nothing: `insert_permission` records them in the same statement (migration.sql).

-- name: record_deferred_owner
-- Owners whose rows another transaction held: deferred, to be tried again. An owner that waits
-- for `--retry-failed` or `run --owner`, or is migrated already, keeps its state.
INSERT INTO rollout_owners (owner_id, state, wave, run_id, updated_at)
SELECT t.owner_id, 'deferred', :wave, :run_id, :now
FROM ROWS t (owner_id BIGINT)
WHERE true
ON CONFLICT (owner_id) DO UPDATE SET
    state = CASE WHEN rollout_owners.state IN ('migrated', 'failed', 'rolled-back') THEN rollout_owners.state
                 ELSE 'deferred' END,
    run_id = excluded.run_id,
    updated_at = excluded.updated_at;

-- name: migrated_owners_of
-- The batch's owners as the ledger has them (by primary key: the state is tested by the caller,
-- so that no plan reads every migrated owner through the state's index).
SELECT owner_id, organization_id, state FROM rollout_owners WHERE owner_id IN :owner_ids;

-- name: moved_projects_in_place
-- Projects the job moved for these owners that are still in the organization it moved them to.
SELECT m.owner_id, m.project_id
FROM rollout_moved_projects m
JOIN projects p ON p.id = m.project_id AND p.organization_id = m.organization_id
WHERE m.owner_id IN :owner_ids
ORDER BY m.owner_id, m.project_id;

-- name: record_batch
INSERT INTO rollout_batches (run_id, seq, started_at, size, duration_seconds, lock_seconds, migrated, deferred,
                             failed, blocked, throttled_seconds, waiting_sessions)
VALUES (:run_id, :seq, :started_at, :size, :duration_seconds, :lock_seconds, :migrated, :deferred,
        :failed, :blocked, :throttled_seconds, :waiting_sessions);

-- name: recent_batch_rate
-- Owners per second of the last batches of the newest run that committed any: `status`'s and the
-- metrics' time-left estimate.
SELECT SUM(size) AS owners, SUM(duration_seconds + throttled_seconds) AS seconds
FROM rollout_batches
WHERE run_id = (SELECT run_id FROM rollout_batches ORDER BY started_at DESC LIMIT 1);

-- name: record_migrated_owner
-- A late arrival keeps what the first migration recorded: its wave, that it created the
-- organization, the billing account it moved.
INSERT INTO rollout_owners (owner_id, state, wave, run_id, organization_id, organization_name,
                            organization_created, billing_account_id, reason, error, attempts,
                            migrated_at, updated_at)
SELECT t.owner_id, 'migrated', :wave, :run_id, t.organization_id, t.organization_name,
       t.organization_created, t.billing_account_id, NULL, NULL, 0, :now, :now
FROM ROWS t (owner_id BIGINT, organization_id BIGINT, organization_name TEXT, organization_created BOOLEAN,
             billing_account_id BIGINT)
-- SQLite needs a WHERE to tell ON CONFLICT from a join's ON.
WHERE true
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

-- name: record_blocked_owner
-- A migrated owner whose late arrival is blocked stays migrated; verify reports the project.
INSERT INTO rollout_owners (owner_id, state, wave, run_id, reason, updated_at)
SELECT t.owner_id, 'blocked', :wave, :run_id, t.reason, :now
FROM ROWS t (owner_id BIGINT, reason TEXT)
WHERE true
ON CONFLICT (owner_id) DO UPDATE SET
    state = CASE WHEN rollout_owners.state = 'migrated' THEN 'migrated' ELSE 'blocked' END,
    reason = excluded.reason,
    run_id = excluded.run_id,
    updated_at = excluded.updated_at;

-- name: record_failed_owner
INSERT INTO rollout_owners (owner_id, state, wave, run_id, error, attempts, updated_at)
VALUES (:owner_id, 'failed', :wave, :run_id, :error, 1, :now)
ON CONFLICT (owner_id) DO UPDATE SET
    state = CASE WHEN rollout_owners.state = 'migrated' THEN 'migrated' ELSE 'failed' END,
    error = excluded.error,
    attempts = rollout_owners.attempts + 1,
    run_id = excluded.run_id,
    updated_at = excluded.updated_at;

-- name: owner_states
SELECT owner_id, state FROM rollout_owners WHERE owner_id IN :owner_ids;

-- name: insert_run
INSERT INTO rollout_runs (id, mode, wave, host, pid, started_at, heartbeat_at, operator, parameters, plan_fingerprint)
VALUES (:id, :mode, :wave, :host, :pid, :now, :now, :operator, :parameters, :plan_fingerprint);

-- name: insert_finished_run
-- An invocation that ended before any batch: nothing to do, or refused (paused, lease held, budget).
INSERT INTO rollout_runs (id, mode, wave, host, pid, started_at, heartbeat_at, finished_at, outcome, message,
                          operator, parameters, plan_fingerprint)
VALUES (:id, :mode, :wave, :host, :pid, :now, :now, :now, :outcome, :message, :operator, :parameters,
        :plan_fingerprint);

-- name: heartbeat_run
UPDATE rollout_runs
SET heartbeat_at = :now, attempted = :attempted, migrated = :migrated, failed = :failed,
    blocked = :blocked, drifted = :drifted, batches = :batches, deferred = :deferred,
    swept = :swept, throttled_seconds = :throttled_seconds
WHERE id = :id;

-- name: finish_run
UPDATE rollout_runs
SET heartbeat_at = :now, finished_at = :now, outcome = :outcome, attempted = :attempted,
    migrated = :migrated, failed = :failed, blocked = :blocked, drifted = :drifted, batches = :batches,
    deferred = :deferred, swept = :swept, throttled_seconds = :throttled_seconds, message = :message
WHERE id = :id;

-- name: abandon_stale_runs
-- A run that died without finishing: its heartbeat stopped. It never blocks anything; this only
-- makes `status` tell the truth about it.
UPDATE rollout_runs
SET outcome = 'abandoned', finished_at = heartbeat_at
WHERE finished_at IS NULL AND heartbeat_at < :stale_before;

-- name: recent_runs
SELECT id, mode, wave, host, pid, started_at, heartbeat_at, finished_at, outcome,
       attempted, migrated, failed, blocked, drifted, deferred, swept, batches, throttled_seconds, message,
       operator, parameters, plan_fingerprint
FROM rollout_runs
ORDER BY started_at DESC
LIMIT :limit;

-- name: get_control
SELECT paused, reason, changed_at, changed_by FROM rollout_control WHERE id = 1;

-- name: set_control
INSERT INTO rollout_control (id, paused, reason, changed_at, changed_by)
VALUES (1, :paused, :reason, :now, :changed_by)
ON CONFLICT (id) DO UPDATE SET
    paused = excluded.paused, reason = excluded.reason,
    changed_at = excluded.changed_at, changed_by = excluded.changed_by;

-- name: record_wave_completed
-- The first completion counts; a wave that late arrivals reopen keeps its date.
INSERT INTO rollout_waves (wave, completed_at, migrated, failed, blocked)
VALUES (:wave, :now, :migrated, :failed, :blocked)
ON CONFLICT (wave) DO UPDATE SET migrated = excluded.migrated, failed = excluded.failed, blocked = excluded.blocked;

-- name: completed_waves
SELECT wave, completed_at, migrated, failed, blocked FROM rollout_waves;

-- name: last_invocations
-- When an invocation last started, and when one last ended healthy: a success, nothing to do, or
-- stopped by its time budget (also a success).
SELECT MAX(started_at) AS attempted_at,
       MAX(CASE WHEN outcome IN ('succeeded', 'nothing-to-do') THEN finished_at END) AS healthy_at,
       MAX(CASE WHEN outcome = 'succeeded' AND mode <> 'rollback' THEN finished_at END) AS succeeded_at
FROM rollout_runs
WHERE mode <> 'rollback';

-- name: owner_record
-- What the ledger holds on one owner, for `rollout show`.
SELECT r.owner_id, r.state, r.wave, r.run_id, r.organization_id, r.organization_name, r.organization_created,
       r.billing_account_id, r.reason, r.error, r.attempts, r.migrated_at, r.updated_at,
       u.username, u.deleted_at, o.name AS organization_now, b.user_id AS billing_user_id,
       b.organization_id AS billing_organization_id
FROM users u
LEFT JOIN rollout_owners r ON r.owner_id = u.id
LEFT JOIN organizations o ON o.id = r.organization_id
LEFT JOIN billing_accounts b ON b.id = r.billing_account_id
WHERE u.id = :owner_id;

-- name: owner_moved_projects
SELECT m.project_id, m.organization_id, m.run_id, m.access_digest, p.organization_id AS organization_now
FROM rollout_moved_projects m
LEFT JOIN projects p ON p.id = m.project_id
WHERE m.owner_id = :owner_id
ORDER BY m.project_id;

-- name: owner_added_members
SELECT a.user_id, a.run_id, m.user_id IS NOT NULL AS still_member
FROM rollout_added_members a
LEFT JOIN organization_members m ON m.organization_id = a.organization_id AND m.user_id = a.user_id
WHERE a.owner_id = :owner_id
ORDER BY a.user_id;

-- name: owner_added_permissions
SELECT user_id, permission, run_id FROM rollout_added_permissions WHERE owner_id = :owner_id ORDER BY user_id, permission;

-- name: owner_rollbacks
-- Every rollback of one owner, newest first, with who ran it.
SELECT b.run_id, b.rolled_back_at, b.migrated_by_run, b.organization_id, b.organization_name,
       b.organization_created, b.projects, r.operator
FROM rollout_rollbacks b
LEFT JOIN rollout_runs r ON r.id = b.run_id
WHERE b.owner_id = :owner_id
ORDER BY b.rolled_back_at DESC;

-- name: runs_of
-- The runs that touched an owner, newest first (its current run, and the runs of its records).
SELECT id, mode, wave, started_at, finished_at, outcome, operator
FROM rollout_runs
WHERE id IN :run_ids
ORDER BY started_at DESC;
