-- Revision 0003: several workers and hosts on one wave (docs/workers.md).
--
-- A wave's run is a job: its selection is planned, in user-id order, into claims of owners that
-- workers take with FOR UPDATE SKIP LOCKED and hold under a lease their batches renew. Planning
-- reserves each new organization's name first, so names follow user-id order whatever the
-- number of workers, hosts or interruptions.

CREATE TABLE rollout_jobs (
    id              TEXT PRIMARY KEY,
    wave            TEXT NOT NULL,
    definition      TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    planned_through BIGINT NULL,
    planned_at      TIMESTAMPTZ NULL,
    claims          INTEGER NOT NULL DEFAULT 0,
    owners          INTEGER NOT NULL DEFAULT 0,
    finished_at     TIMESTAMPTZ NULL,
    outcome         TEXT NULL
);

-- One unfinished job per wave: a second host starting the same wave joins it.
CREATE UNIQUE INDEX rollout_jobs_live_wave_idx ON rollout_jobs (wave) WHERE finished_at IS NULL;

CREATE TABLE rollout_claims (
    job_id         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    first_owner_id BIGINT NOT NULL,
    last_owner_id  BIGINT NOT NULL,
    owner_ids      TEXT NOT NULL,
    owners         INTEGER NOT NULL,
    holder         TEXT NULL,
    expires_at     TIMESTAMPTZ NULL,
    takeovers      INTEGER NOT NULL DEFAULT 0,
    done_through   BIGINT NULL,
    concluded      INTEGER NOT NULL DEFAULT 0,
    finished_at    TIMESTAMPTZ NULL,
    PRIMARY KEY (job_id, seq)
);

-- The name each planned owner's new organization gets; released when the owner is migrated
-- (the organization holds it then), blocked, or rolled back.
CREATE TABLE rollout_names (
    owner_id    BIGINT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    job_id      TEXT NOT NULL,
    reserved_at TIMESTAMPTZ NOT NULL
);

-- A run is one worker; the workers of a job are the runs that name it.
ALTER TABLE rollout_runs ADD COLUMN job_id TEXT NULL;
