-- name: set_meta
-- Records a fact about the job's schema or database (schema version, demo marker).
INSERT INTO rollout_meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: get_meta
SELECT value FROM rollout_meta WHERE key = :key;
