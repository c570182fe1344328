-- Revision 0001: the job's own tables as the first release made them (docs/data-model.md). They
-- live beside the platform tables so that an owner's migration and its checkpoint commit in one
-- transaction. Every statement is idempotent: a database made by that release is stamped 0001 and
-- upgraded from there.

CREATE TABLE IF NOT EXISTS rollout_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rollout_runs (
    id           TEXT PRIMARY KEY,
    mode         TEXT NOT NULL,
    wave         TEXT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NULL,
    outcome      TEXT NULL CHECK (outcome IN ('succeeded', 'failed', 'interrupted', 'halted', 'abandoned', 'crashed')),
    attempted    INTEGER NOT NULL DEFAULT 0,
    migrated     INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    blocked      INTEGER NOT NULL DEFAULT 0,
    drifted      INTEGER NOT NULL DEFAULT 0,
    batches      INTEGER NOT NULL DEFAULT 0,
    message      TEXT NULL
);

CREATE INDEX IF NOT EXISTS rollout_runs_started_at_idx ON rollout_runs (started_at);

-- One row per owner the job has looked at: its state and what was done for it.
CREATE TABLE IF NOT EXISTS rollout_owners (
    owner_id             BIGINT PRIMARY KEY,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'migrated', 'failed', 'blocked', 'rolled-back')),
    wave                 TEXT NULL,
    run_id               TEXT NULL,
    organization_id      BIGINT NULL,
    organization_name    TEXT NULL,
    organization_created BOOLEAN NOT NULL DEFAULT FALSE,
    billing_account_id   BIGINT NULL,
    reason               TEXT NULL,
    error                TEXT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    migrated_at          TIMESTAMPTZ NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS rollout_owners_state_idx ON rollout_owners (state);

-- Projects the job moved, with a digest of their access rows at the time (invariant access-unchanged).
CREATE TABLE IF NOT EXISTS rollout_moved_projects (
    project_id      TEXT PRIMARY KEY,
    owner_id        BIGINT NOT NULL,
    organization_id BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    access_digest   TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS rollout_moved_projects_owner_idx ON rollout_moved_projects (owner_id);

-- Memberships the job created; members that existed before are not listed, so rollback keeps them.
CREATE TABLE IF NOT EXISTS rollout_added_members (
    organization_id BIGINT NOT NULL,
    user_id         BIGINT NOT NULL,
    owner_id        BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);

CREATE INDEX IF NOT EXISTS rollout_added_members_owner_idx ON rollout_added_members (owner_id);

CREATE TABLE IF NOT EXISTS rollout_added_permissions (
    organization_id BIGINT NOT NULL,
    user_id         BIGINT NOT NULL,
    permission      TEXT NOT NULL,
    owner_id        BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id, permission)
);

CREATE INDEX IF NOT EXISTS rollout_added_permissions_owner_idx ON rollout_added_permissions (owner_id);

-- Pause flag shared by every worker on every host.
CREATE TABLE IF NOT EXISTS rollout_control (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    paused     BOOLEAN NOT NULL,
    reason     TEXT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT NULL
);

-- When each wave was first found complete, and how it went: `run --auto` soaks from this moment
-- and checks the wave's error budget before it starts the next wave.
CREATE TABLE IF NOT EXISTS rollout_waves (
    wave         TEXT PRIMARY KEY,
    completed_at TIMESTAMPTZ NOT NULL,
    migrated     INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    blocked      INTEGER NOT NULL
);
