-- `rollout seed`: the few statements around the bulk load.

-- name: users_present
SELECT 1 FROM users LIMIT 1;

-- name: is_superuser
SHOW is_superuser;

-- name: defer_foreign_key_triggers
-- Only for this transaction (LOCAL): a superuser's bulk load skips PostgreSQL's per-row foreign-key
-- triggers; the seed then checks every foreign key set-based before it commits.
SET LOCAL session_replication_role = replica;
