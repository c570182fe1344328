-- Revision 0002: living beside a busy platform. Owners whose rows another transaction holds are
-- deferred (a state); runs record deferred and swept owners, the time they spent throttled, who
-- started them, with what and which plan, and outcomes for an invocation with nothing to do or refused, and a new outcome
-- for a run that stayed throttled too long; every batch is recorded.

ALTER TABLE rollout_runs DROP CONSTRAINT rollout_runs_outcome_check;
ALTER TABLE rollout_runs ADD CONSTRAINT rollout_runs_outcome_check CHECK (outcome IN ('succeeded', 'failed', 'interrupted', 'halted', 'abandoned', 'crashed', 'throttled', 'nothing-to-do', 'refused'));
ALTER TABLE rollout_runs ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollout_runs ADD COLUMN swept INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollout_runs ADD COLUMN throttled_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
-- Every invocation is recorded (a run, one with nothing to do, one refused, a rollback, a sweep):
-- who ran it, with what, against which plan.
ALTER TABLE rollout_runs ADD COLUMN operator TEXT NULL;
ALTER TABLE rollout_runs ADD COLUMN parameters TEXT NULL;
ALTER TABLE rollout_runs ADD COLUMN plan_fingerprint TEXT NULL;

ALTER TABLE rollout_owners DROP CONSTRAINT rollout_owners_state_check;
ALTER TABLE rollout_owners ADD CONSTRAINT rollout_owners_state_check CHECK (state IN ('pending', 'migrated', 'failed', 'blocked', 'rolled-back', 'deferred'));

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
