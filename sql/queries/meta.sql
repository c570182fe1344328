-- The job's schema facts, the session settings of a batch, and the lock of `run --auto`.

-- name: set_meta
-- Records a fact about the job's schema or database (schema version, demo marker).
INSERT INTO rollout_meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: get_meta
SELECT value FROM rollout_meta WHERE key = :key;

-- name: limit_lock_wait
-- A batch waits at most this long for the platform's row locks; then it fails as a lock timeout
-- (55P03) and is retried whole, so a stuck platform transaction never holds a run (or its stop
-- signal) indefinitely.
SET LOCAL lock_timeout = '30s';

-- name: limit_lock_wait@sqlite
-- Nothing: SQLite waits for its write lock up to the connection's busy timeout.

-- name: read_only
-- The dry run's guarantee: the transaction refuses writes.
SET TRANSACTION READ ONLY;

-- name: read_only@sqlite
-- Nothing: SQLite has no read-only transactions; the dry run writes nothing anyway.

-- name: try_auto_lock
SELECT pg_try_advisory_lock(:key);

-- name: release_auto_lock
SELECT pg_advisory_unlock(:key);
