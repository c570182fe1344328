-- Revision 0002 on SQLite, which cannot alter a CHECK constraint: the two tables are rebuilt with
-- their rows (see 0002_live_platform.sql for what changes).

CREATE TABLE rollout_runs_0002 (
    id                TEXT PRIMARY KEY,
    mode              TEXT NOT NULL,
    wave              TEXT NULL,
    host              TEXT NOT NULL,
    pid               INTEGER NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    heartbeat_at      TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ NULL,
    outcome           TEXT NULL CHECK (outcome IN ('succeeded', 'failed', 'interrupted', 'halted', 'abandoned', 'crashed', 'throttled', 'nothing-to-do', 'refused')),
    attempted         INTEGER NOT NULL DEFAULT 0,
    migrated          INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    blocked           INTEGER NOT NULL DEFAULT 0,
    drifted           INTEGER NOT NULL DEFAULT 0,
    batches           INTEGER NOT NULL DEFAULT 0,
    message           TEXT NULL,
    deferred          INTEGER NOT NULL DEFAULT 0,
    swept             INTEGER NOT NULL DEFAULT 0,
    throttled_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    operator          TEXT NULL,
    parameters        TEXT NULL,
    plan_fingerprint  TEXT NULL
);
INSERT INTO rollout_runs_0002 (id, mode, wave, host, pid, started_at, heartbeat_at, finished_at, outcome,
                               attempted, migrated, failed, blocked, drifted, batches, message)
SELECT id, mode, wave, host, pid, started_at, heartbeat_at, finished_at, outcome,
       attempted, migrated, failed, blocked, drifted, batches, message
FROM rollout_runs;
DROP TABLE rollout_runs;
ALTER TABLE rollout_runs_0002 RENAME TO rollout_runs;
CREATE INDEX rollout_runs_started_at_idx ON rollout_runs (started_at);

CREATE TABLE rollout_owners_0002 (
    owner_id             BIGINT PRIMARY KEY,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'migrated', 'failed', 'blocked', 'rolled-back', 'deferred')),
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
INSERT INTO rollout_owners_0002 SELECT * FROM rollout_owners;
DROP TABLE rollout_owners;
ALTER TABLE rollout_owners_0002 RENAME TO rollout_owners;
CREATE INDEX rollout_owners_state_idx ON rollout_owners (state);

-- One row per batch of a run: what it did and how long it held its locks; the adaptive batch size,
-- `status`'s time-left estimate and the metrics read it.
CREATE TABLE rollout_batches (
    run_id            TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    size              INTEGER NOT NULL,
    duration_seconds  DOUBLE PRECISION NOT NULL,
    lock_seconds      DOUBLE PRECISION NOT NULL,
    migrated          INTEGER NOT NULL,
    deferred          INTEGER NOT NULL,
    failed            INTEGER NOT NULL,
    blocked           INTEGER NOT NULL,
    throttled_seconds DOUBLE PRECISION NOT NULL,
    waiting_sessions  INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE INDEX rollout_batches_started_at_idx ON rollout_batches (started_at);

-- The lease of `run --auto`: one cron run at a time, per database. A row, not a session lock, so
-- that it survives a pooler in transaction mode, an idle-session timeout or a killed connection;
-- renewed by every batch of the run that holds it, taken over once expired.
CREATE TABLE rollout_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- What each rollback undid, per owner: the ledger of a migration is forgotten when it is rolled
-- back, so that `rollout show` can still say that, when, by which run and from which organization.
CREATE TABLE rollout_rollbacks (
    owner_id             BIGINT NOT NULL,
    run_id               TEXT NOT NULL,
    rolled_back_at       TIMESTAMPTZ NOT NULL,
    migrated_by_run      TEXT NULL,
    organization_id      BIGINT NULL,
    organization_name    TEXT NULL,
    organization_created BOOLEAN NOT NULL,
    projects             INTEGER NOT NULL,
    PRIMARY KEY (owner_id, run_id)
);
