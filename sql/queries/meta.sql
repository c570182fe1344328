-- The job's schema facts, the lease of `run --auto`, the database's health.

-- name: set_meta
-- Records a fact about the job's schema or database (schema version, demo marker).
INSERT INTO rollout_meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: get_meta
SELECT value FROM rollout_meta WHERE key = :key;

-- name: read_only
-- The dry run's guarantee: the transaction refuses writes.
SET TRANSACTION READ ONLY;

-- name: read_only@sqlite
-- Nothing: SQLite has no read-only transactions; the dry run writes nothing anyway.

-- name: take_lease
-- Takes the lease when it is free, expired, or already ours; `lease_holder` then says who has it.
INSERT INTO rollout_leases (name, holder, host, pid, acquired_at, expires_at)
VALUES (:name, :holder, :host, :pid, :now, :expires)
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder, host = excluded.host, pid = excluded.pid,
    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
WHERE rollout_leases.expires_at < excluded.acquired_at OR rollout_leases.holder = excluded.holder;

-- name: lease_holder
SELECT holder, host, pid, expires_at FROM rollout_leases WHERE name = :name;

-- name: renew_lease
UPDATE rollout_leases SET expires_at = :expires WHERE name = :name AND holder = :holder;

-- name: release_lease
DELETE FROM rollout_leases WHERE name = :name AND holder = :holder;

-- name: replication_lag
-- The largest replay lag of the standbys, in seconds (NULL without standbys): a health signal.
SELECT EXTRACT(EPOCH FROM MAX(replay_lag)) FROM pg_stat_replication;

-- name: replication_lag@sqlite
-- Nothing: SQLite has no standbys.

-- name: limit_check_time
-- The operator's health query gets a few seconds, in a read-only transaction.
SELECT set_config('statement_timeout', '5s', true);

-- name: limit_check_time@sqlite
-- Nothing: SQLite runs in process.
