-- Several workers on one wave (docs/workers.md): the wave's job, its claims, the names planned.

-- name: insert_job
-- A wave has at most one unfinished job (a partial unique index): a second host joins it.
INSERT INTO rollout_jobs (id, wave, definition, started_at) VALUES (:id, :wave, :definition, :now)
ON CONFLICT DO NOTHING;

-- name: live_job
SELECT id, definition, planned_through, planned_at, claims, owners, started_at
FROM rollout_jobs WHERE wave = :wave AND finished_at IS NULL;

-- name: job_for_update
SELECT id, planned_through, planned_at, finished_at, claims FROM rollout_jobs WHERE id = :id FOR UPDATE;

-- name: job_for_update@sqlite
-- BEGIN IMMEDIATE holds the database's write lock already.
SELECT id, planned_through, planned_at, finished_at, claims FROM rollout_jobs WHERE id = :id;

-- name: job_planned_chunk
UPDATE rollout_jobs SET planned_through = :through, claims = claims + :claims, owners = owners + :owners,
    planned_at = :planned_at
WHERE id = :id;

-- name: finish_job
-- Only the worker that finishes the job's last claim (or finds every claim finished) closes it.
UPDATE rollout_jobs SET finished_at = :now, outcome = :outcome
WHERE id = :id AND finished_at IS NULL AND planned_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM rollout_claims c WHERE c.job_id = :id AND c.finished_at IS NULL);

-- name: supersede_job
-- A job planned for another definition of the wave (the plan file changed) is closed unfinished;
-- its owners that are left are selected again by the new job.
UPDATE rollout_jobs SET finished_at = :now, outcome = 'superseded' WHERE id = :id AND finished_at IS NULL;

-- name: insert_claim
INSERT INTO rollout_claims (job_id, seq, first_owner_id, last_owner_id, owner_ids, owners)
VALUES (:job_id, :seq, :first_owner_id, :last_owner_id, :owner_ids, :owners);

-- name: claimable
-- The first claim nobody holds, or whose holder's lease ran out (a dead worker: taken over), of a
-- job still under way (a superseded job's claims are left). SKIP LOCKED: workers looking at once
-- each get a different claim, nobody waits.
SELECT seq, owner_ids, holder, done_through FROM rollout_claims
WHERE job_id = :job_id AND finished_at IS NULL AND (holder IS NULL OR expires_at < :now)
  AND EXISTS (SELECT 1 FROM rollout_jobs j WHERE j.id = :job_id AND j.finished_at IS NULL)
ORDER BY seq LIMIT 1 FOR UPDATE OF rollout_claims SKIP LOCKED;

-- name: claimable@sqlite
SELECT seq, owner_ids, holder, done_through FROM rollout_claims
WHERE job_id = :job_id AND finished_at IS NULL AND (holder IS NULL OR expires_at < :now)
  AND EXISTS (SELECT 1 FROM rollout_jobs j WHERE j.id = :job_id AND j.finished_at IS NULL)
ORDER BY seq LIMIT 1;

-- name: job_started_at
SELECT started_at FROM rollout_jobs WHERE id = :id;

-- name: latest_job_workers
-- The workers of the newest job (under way or not), for the metrics: every host's push shows all.
SELECT r.id, r.migrated, r.failed, r.blocked, r.deferred FROM rollout_runs r
WHERE r.job_id = (SELECT j.id FROM rollout_jobs j ORDER BY j.started_at DESC, j.id LIMIT 1)
ORDER BY r.id;

-- name: take_claim
UPDATE rollout_claims SET holder = :holder, expires_at = :expires,
    takeovers = takeovers + CASE WHEN holder IS NULL THEN 0 ELSE 1 END
WHERE job_id = :job_id AND seq = :seq;

-- name: renew_claims
-- The heartbeat of a worker's claims; a claim another worker took over is not renewed.
UPDATE rollout_claims SET expires_at = :expires
WHERE job_id = :job_id AND holder = :holder AND finished_at IS NULL;

-- name: checkpoint_claim
UPDATE rollout_claims SET done_through = :done_through, concluded = concluded + :concluded,
    expires_at = :expires, finished_at = :finished_at
WHERE job_id = :job_id AND seq = :seq AND holder = :holder;

-- name: release_claims
-- A worker that stops (a signal, a budget) hands its claims back with their checkpoints.
UPDATE rollout_claims SET holder = NULL, expires_at = NULL
WHERE job_id = :job_id AND holder = :holder AND finished_at IS NULL;

-- name: job_progress
SELECT COUNT(*) AS claims,
       SUM(CASE WHEN finished_at IS NULL THEN 1 ELSE 0 END) AS unfinished,
       SUM(CASE WHEN finished_at IS NULL AND holder IS NOT NULL AND expires_at >= :now THEN 1 ELSE 0 END) AS held
FROM rollout_claims WHERE job_id = :job_id;

-- name: planning_owners
-- What planning needs of a chunk's owners: the name's inputs, the organizations they own, and a
-- name planned for them before (by this job or another).
SELECT u.id, u.username, u.deleted_at IS NOT NULL AS deleted,
       (SELECT COUNT(*) FROM organizations o WHERE o.owner_id = u.id) AS organizations,
       n.name AS reserved
FROM users u LEFT JOIN rollout_names n ON n.owner_id = u.id
WHERE u.id IN :owner_ids;

-- name: names_taken
-- Names an organization has, or that are planned for another owner.
SELECT name FROM organizations WHERE name IN :names
UNION
SELECT name FROM rollout_names WHERE name IN :names;

-- name: reserve_names
INSERT INTO rollout_names (owner_id, name, job_id, reserved_at)
SELECT t.owner_id, t.name, :job_id, :now FROM ROWS t (owner_id BIGINT, name TEXT);

-- name: reserved_names_of
SELECT owner_id, name FROM rollout_names WHERE owner_id IN :owner_ids;

-- name: release_names
-- The organization holds the name now (or the owner was blocked, or rolled back).
DELETE FROM rollout_names WHERE owner_id IN :owner_ids;

-- name: live_workers
-- The runs working on unfinished jobs, with the claims they hold: `status` shows each worker.
SELECT r.id, r.job_id, j.wave, r.host, r.pid, r.started_at, r.heartbeat_at, r.finished_at,
       r.attempted, r.migrated, r.failed, r.blocked, r.deferred,
       (SELECT COUNT(*) FROM rollout_claims c
        WHERE c.job_id = r.job_id AND c.holder = r.id AND c.finished_at IS NULL) AS claims_held
FROM rollout_runs r JOIN rollout_jobs j ON j.id = r.job_id
WHERE j.finished_at IS NULL
ORDER BY r.started_at, r.id;

-- name: live_jobs
SELECT j.id, j.wave, j.started_at, j.planned_at, j.claims, j.owners,
       (SELECT COUNT(*) FROM rollout_claims c WHERE c.job_id = j.id AND c.finished_at IS NOT NULL) AS finished,
       (SELECT COALESCE(SUM(c.concluded), 0) FROM rollout_claims c WHERE c.job_id = j.id) AS concluded
FROM rollout_jobs j WHERE j.finished_at IS NULL ORDER BY j.started_at;

-- name: set_run_job
UPDATE rollout_runs SET job_id = :job_id WHERE id = :run_id;

-- name: claim_holders
-- Who holds the job's unfinished claims, with their runs: a holder on this host whose process is
-- gone, or whose run ended, is not waited for.
SELECT DISTINCT c.holder, r.host, r.pid, r.finished_at
FROM rollout_claims c LEFT JOIN rollout_runs r ON r.id = c.holder
WHERE c.job_id = :job_id AND c.finished_at IS NULL AND c.holder IS NOT NULL AND c.expires_at >= :now;

-- name: expire_claims_of
UPDATE rollout_claims SET expires_at = :expired
WHERE job_id = :job_id AND holder = :holder AND finished_at IS NULL;

-- name: job_fellows
-- The other runs of a job at work since `since` (a heartbeat as new): the owners they attempted
-- and failed, and when the first of them started. A wave's safety limits hold for its workers together.
SELECT COALESCE(SUM(attempted), 0) AS attempted, COALESCE(SUM(failed), 0) AS failed,
       MIN(started_at) AS started_at
FROM rollout_runs
WHERE job_id = :job_id AND id <> :run_id AND heartbeat_at >= :since;
