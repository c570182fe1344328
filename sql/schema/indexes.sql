-- The platform indexes the job's statements rely on (docs/data-model.md, "Indexes"). A platform
-- schema is not the job's: `rollout plan` and `rollout run` check that an index serves each of
-- these lookups (any valid B-tree whose leading columns are these, a primary key or unique
-- constraint included) and print the statement of each one missing; `rollout db indexes` runs
-- them, one by one, without blocking the platform's writes (CONCURRENTLY, on PostgreSQL).
-- {create_index} is `CREATE INDEX CONCURRENTLY IF NOT EXISTS` on PostgreSQL, `CREATE INDEX IF NOT
-- EXISTS` on SQLite. The names are the job's own (`rollout_…`): `IF NOT EXISTS` never meets a
-- platform index of the same name, only one of the job's left invalid by a build that failed.

-- A batch reads its owners' organizations (reuse, names); verify reads them by owner. Without it
-- every batch scans the organizations table, which grows with every organization the job creates.
{create_index} rollout_organizations_owner_id_idx ON organizations (owner_id);

-- A batch checks which of its candidate names are taken.
{create_index} rollout_organizations_name_idx ON organizations (name);

-- Selection pages owners by their legacy projects; a batch reads its owners' legacy projects.
{create_index} rollout_projects_owner_id_idx ON projects (owner_id);

-- Rollback deletes an organization only when no project is in it; the sweep follows moved projects.
{create_index} rollout_projects_organization_id_idx ON projects (organization_id);

-- The grants of the moving projects.
{create_index} rollout_project_access_project_id_idx ON project_access (project_id);

-- The environments of the moving projects, and their grants.
{create_index} rollout_environments_project_id_idx ON environments (project_id);
{create_index} rollout_environment_access_environment_id_idx ON environment_access (environment_id);

-- The billing account moving with its owner, and the one an organization already has.
{create_index} rollout_billing_accounts_user_id_idx ON billing_accounts (user_id);
{create_index} rollout_billing_accounts_organization_id_idx ON billing_accounts (organization_id);

-- The members and permissions an organization already has.
{create_index} rollout_organization_members_organization_id_idx ON organization_members (organization_id);
{create_index} rollout_organization_member_permissions_member_idx ON organization_member_permissions (organization_id, user_id);
