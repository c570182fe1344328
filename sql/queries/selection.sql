-- Which owners a wave selects (docs/plan-file.md), read page by page in user-id order.

-- name: legacy_owner_page
-- The next owners of legacy projects after :after_id, with what the wave filters need and the
-- state the job recorded for them. Keyset paging keeps memory flat and survives concurrent writes.
-- The ledger's side has the page's lower bound too: a merge join would otherwise read the ledger
-- from its first owner for every page.
SELECT p.owner_id,
       COUNT(*) AS legacy_projects,
       SUM(CASE WHEN p.region IN :regions THEN 1 ELSE 0 END) AS in_regions,
       -- a migrated owner whose late project is blocked or failed counts as blocked or failed
       MAX(CASE WHEN r.state = 'migrated' AND r.reason IS NOT NULL THEN 'blocked'
                WHEN r.state = 'migrated' AND r.error IS NOT NULL THEN 'failed'
                ELSE r.state END) AS state,
       MAX(CASE WHEN r.state = 'migrated' THEN 1 ELSE 0 END) AS migrated_before
FROM projects p
LEFT JOIN rollout_owners r ON r.owner_id = p.owner_id AND r.owner_id > :after_id
WHERE p.organization_id IS NULL AND p.status <> 'deleted' AND p.owner_id > :after_id
GROUP BY p.owner_id
ORDER BY p.owner_id
LIMIT :page_size;

-- name: listed_owner_page
-- The same for a wave that names its owners: only those are read.
SELECT p.owner_id,
       COUNT(*) AS legacy_projects,
       SUM(CASE WHEN p.region IN :regions THEN 1 ELSE 0 END) AS in_regions,
       -- a migrated owner whose late project is blocked or failed counts as blocked or failed
       MAX(CASE WHEN r.state = 'migrated' AND r.reason IS NOT NULL THEN 'blocked'
                WHEN r.state = 'migrated' AND r.error IS NOT NULL THEN 'failed'
                ELSE r.state END) AS state,
       MAX(CASE WHEN r.state = 'migrated' THEN 1 ELSE 0 END) AS migrated_before
FROM projects p
LEFT JOIN rollout_owners r ON r.owner_id = p.owner_id AND r.owner_id > :after_id
WHERE p.organization_id IS NULL AND p.status <> 'deleted' AND p.owner_id > :after_id
  AND p.owner_id IN :listed
GROUP BY p.owner_id
ORDER BY p.owner_id
LIMIT :page_size;

-- name: user_exists
SELECT id FROM users WHERE id = :user_id;

-- name: failed_owners
-- Failed owners, and migrated owners whose late project failed.
SELECT owner_id, state, wave, reason, error, attempts, updated_at FROM rollout_owners
WHERE state = 'failed' OR (state = 'migrated' AND error IS NOT NULL)
ORDER BY owner_id;

-- name: migrated_owner_page
-- Owners the job migrated, with the wave whose run did it.
SELECT owner_id, wave FROM rollout_owners
WHERE state = 'migrated' AND owner_id > :after_id
ORDER BY owner_id
LIMIT :page_size;

-- name: refresh_owner_statistics
-- Fresh planner statistics for the tables a run fills faster than autovacuum samples them. Without
-- them the planner takes `state = 'migrated'` for a rare value and answers every page of
-- `sweep_owner_page` and `migrated_owner_page` by reading all migrated owners and sorting them:
-- each page then costs the whole table, quadratic over a sweep (162 ms a page at 1 000 000 owners).
ANALYZE rollout_owners, rollout_moved_projects;

-- name: refresh_owner_statistics@sqlite
-- SQLite analyses one table per statement; its planner makes the same mistake without statistics.
ANALYZE rollout_owners;

-- name: sweep_owner_page
-- Migrated owners after :after_id, with the wave that migrated them and when.
SELECT owner_id, wave, migrated_at FROM rollout_owners
WHERE state = 'migrated' AND owner_id > :after_id
ORDER BY owner_id
LIMIT :page_size;

-- name: sweep_candidates
-- Of these migrated owners, those for whom the platform wrote, since, what the migration's rules
-- handle: a legacy project; a user holding access on a project the job moved (still where it put
-- it) who is active and not a member; a billing account on the owner's user while the
-- organization has none. One join per kind of write, over the owners given.
SELECT r.owner_id
FROM rollout_owners r
WHERE r.owner_id IN :owner_ids AND r.owner_id IN (
    SELECT p.owner_id FROM projects p
    WHERE p.owner_id IN :owner_ids AND p.organization_id IS NULL AND p.status <> 'deleted'
    UNION
    SELECT b.user_id FROM billing_accounts b
    JOIN rollout_owners o ON o.owner_id = b.user_id
    LEFT JOIN billing_accounts ob ON ob.organization_id = o.organization_id
    WHERE b.user_id IN :owner_ids AND ob.id IS NULL
    UNION
    SELECT m.owner_id FROM rollout_moved_projects m
    JOIN projects p ON p.id = m.project_id AND p.organization_id = m.organization_id
    JOIN project_access a ON a.project_id = m.project_id AND a.user_id <> m.owner_id
    JOIN users u ON u.id = a.user_id AND u.deleted_at IS NULL
    LEFT JOIN organization_members om ON om.organization_id = m.organization_id AND om.user_id = a.user_id
    WHERE m.owner_id IN :owner_ids AND om.user_id IS NULL
    UNION
    SELECT m.owner_id FROM rollout_moved_projects m
    JOIN projects p ON p.id = m.project_id AND p.organization_id = m.organization_id
    JOIN environments e ON e.project_id = m.project_id
    JOIN environment_access a ON a.environment_id = e.id AND a.user_id <> m.owner_id
    JOIN users u ON u.id = a.user_id AND u.deleted_at IS NULL
    LEFT JOIN organization_members om ON om.organization_id = m.organization_id AND om.user_id = a.user_id
    WHERE m.owner_id IN :owner_ids AND om.user_id IS NULL
)
ORDER BY r.owner_id;

-- name: existing_users
-- Which of these ids are users (a plan may list owners that do not exist).
SELECT id FROM users WHERE id IN :user_ids;
