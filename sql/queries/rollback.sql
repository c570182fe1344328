-- Undoing what the job did for a batch of owners , from what it recorded.

-- name: rollback_owners
SELECT owner_id, state, wave, organization_id, organization_name, organization_created, billing_account_id
FROM rollout_owners
WHERE owner_id IN :owner_ids AND state = 'migrated'
ORDER BY owner_id;

-- name: recorded_projects
SELECT m.owner_id, m.project_id, p.organization_id = m.organization_id AS still_there
FROM rollout_moved_projects m
JOIN projects p ON p.id = m.project_id
WHERE m.owner_id IN :owner_ids
ORDER BY m.owner_id, m.project_id;

-- name: recorded_members
SELECT owner_id, organization_id, user_id FROM rollout_added_members WHERE owner_id IN :owner_ids
ORDER BY owner_id, user_id;

-- name: recorded_permissions
SELECT owner_id, organization_id, user_id, permission FROM rollout_added_permissions WHERE owner_id IN :owner_ids
ORDER BY owner_id, user_id, permission;

-- Every statement joins the batch's rows of the ledger to the platform rows by key, so a batch
-- costs the same whatever the size of the platform's tables.

-- name: return_projects
-- Only projects still in the organization the job moved them to; one moved elsewhere since stays.
UPDATE projects SET organization_id = NULL
FROM rollout_moved_projects m
WHERE m.owner_id IN :owner_ids AND m.project_id = projects.id AND projects.organization_id = m.organization_id;

-- name: return_billing_accounts
UPDATE billing_accounts SET user_id = r.owner_id, organization_id = NULL
FROM rollout_owners r
WHERE r.owner_id IN :owner_ids AND r.billing_account_id = billing_accounts.id
  AND billing_accounts.organization_id = r.organization_id;

-- name: organizations_in_use
-- Organizations the job created that something else uses now (a project, a billing account, a
-- member the job did not add): they survive the rollback, and so does their owner in them.
SELECT o.id FROM organizations o
WHERE o.id IN :organization_ids AND (
    EXISTS (SELECT 1 FROM projects p WHERE p.organization_id = o.id)
    OR EXISTS (SELECT 1 FROM billing_accounts b WHERE b.organization_id = o.id)
    OR EXISTS (SELECT 1 FROM organization_members m WHERE m.organization_id = o.id AND NOT EXISTS (
        SELECT 1 FROM rollout_added_members a WHERE a.organization_id = m.organization_id AND a.user_id = m.user_id))
);

-- name: remove_added_permissions
DELETE FROM organization_member_permissions
WHERE (organization_id, user_id, permission) IN (
    SELECT a.organization_id, a.user_id, a.permission FROM rollout_added_permissions a
    WHERE a.owner_id IN :owner_ids
      AND NOT (a.user_id = a.owner_id AND a.organization_id IN :kept_organization_ids)
);

-- name: remove_permissions_of_added_members
-- A member the job added cannot keep a permission without the membership; the platform may have
-- granted one since. It goes with the membership.
DELETE FROM organization_member_permissions
WHERE (organization_id, user_id) IN (
    SELECT a.organization_id, a.user_id FROM rollout_added_members a
    WHERE a.owner_id IN :owner_ids
      AND NOT (a.user_id = a.owner_id AND a.organization_id IN :kept_organization_ids)
);

-- name: remove_added_members
DELETE FROM organization_members
WHERE (organization_id, user_id) IN (
    SELECT a.organization_id, a.user_id FROM rollout_added_members a
    WHERE a.owner_id IN :owner_ids
      AND NOT (a.user_id = a.owner_id AND a.organization_id IN :kept_organization_ids)
);

-- name: delete_unused_organizations
-- Organizations the job created that nothing uses any more.
DELETE FROM organizations
WHERE id IN :organization_ids
  AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.organization_id = organizations.id)
  AND NOT EXISTS (SELECT 1 FROM billing_accounts b WHERE b.organization_id = organizations.id)
  AND NOT EXISTS (SELECT 1 FROM organization_members m WHERE m.organization_id = organizations.id);

-- name: existing_organizations
SELECT id FROM organizations WHERE id IN :organization_ids;

-- name: record_rollback_history
-- Before the ledger of these owners is forgotten: what the rollback undid, for `rollout show`.
INSERT INTO rollout_rollbacks (owner_id, run_id, rolled_back_at, migrated_by_run, organization_id,
                               organization_name, organization_created, projects)
SELECT r.owner_id, :run_id, :now, r.run_id, r.organization_id, r.organization_name, r.organization_created,
       (SELECT COUNT(*) FROM rollout_moved_projects m WHERE m.owner_id = r.owner_id)
FROM rollout_owners r
WHERE r.owner_id IN :owner_ids;

-- name: forget_moved_projects
DELETE FROM rollout_moved_projects WHERE owner_id IN :owner_ids;

-- name: forget_added_members
DELETE FROM rollout_added_members WHERE owner_id IN :owner_ids;

-- name: forget_added_permissions
DELETE FROM rollout_added_permissions WHERE owner_id IN :owner_ids;

-- name: record_rolled_back
UPDATE rollout_owners
SET state = 'rolled-back', run_id = :run_id, organization_id = NULL, organization_name = NULL,
    organization_created = FALSE, billing_account_id = NULL, reason = NULL, error = NULL,
    migrated_at = NULL, updated_at = :now
WHERE owner_id IN :owner_ids;
