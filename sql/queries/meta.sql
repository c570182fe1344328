-- The job's schema facts, the session settings of a batch, and the lock of `run --auto`.

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

-- name: try_auto_lock
SELECT pg_try_advisory_lock(:key);

-- name: release_auto_lock
SELECT pg_advisory_unlock(:key);

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
