-- Which owners a wave selects (SPEC 4), read page by page in user-id order.

-- name: legacy_owner_page
-- The next owners of legacy projects after :after_id, with what the wave filters need and the
-- state the job recorded for them. Keyset paging keeps memory flat and survives concurrent writes.
SELECT p.owner_id,
       COUNT(*) AS legacy_projects,
       SUM(CASE WHEN p.region IN :regions THEN 1 ELSE 0 END) AS in_regions,
       MAX(r.state) AS state
FROM projects p
LEFT JOIN rollout_owners r ON r.owner_id = p.owner_id
WHERE p.organization_id IS NULL AND p.status <> 'deleted' AND p.owner_id > :after_id
GROUP BY p.owner_id
ORDER BY p.owner_id
LIMIT :page_size;

-- name: listed_owner_page
-- The same for a wave that names its owners: only those are read.
SELECT p.owner_id,
       COUNT(*) AS legacy_projects,
       SUM(CASE WHEN p.region IN :regions THEN 1 ELSE 0 END) AS in_regions,
       MAX(r.state) AS state
FROM projects p
LEFT JOIN rollout_owners r ON r.owner_id = p.owner_id
WHERE p.organization_id IS NULL AND p.status <> 'deleted' AND p.owner_id > :after_id
  AND p.owner_id IN :listed
GROUP BY p.owner_id
ORDER BY p.owner_id
LIMIT :page_size;

-- name: user_exists
SELECT id FROM users WHERE id = :user_id;

-- name: owners_by_state
SELECT owner_id, state, wave, reason, error, attempts, updated_at FROM rollout_owners WHERE state = :state
ORDER BY owner_id;

-- name: wave_state_counts
SELECT wave, state, COUNT(*) AS owners FROM rollout_owners GROUP BY wave, state;
-- name: migrated_owner_page
-- Owners the job migrated, with the wave whose run did it.
SELECT owner_id, wave FROM rollout_owners
WHERE state = 'migrated' AND owner_id > :after_id
ORDER BY owner_id
LIMIT :page_size;
