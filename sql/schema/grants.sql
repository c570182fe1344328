-- The privileges the job needs on PostgreSQL (`rollout db grants --role NAME`), for a role that
-- owns nothing: the tables are the platform's, and the `rollout_` tables are made by whoever runs
-- `rollout db init` (which alone needs CREATE on the schema). {role} is the quoted role name.
--
-- A batch locks the rows it depends on (FOR UPDATE / FOR SHARE), which PostgreSQL allows only
-- with an UPDATE privilege on at least one column of the table: the job gets it on the primary-key
-- column of users, environments and organizations, a column it never writes (and that foreign keys
-- keep from changing while rows refer to it).

-- section: run
GRANT SELECT ON users, environments, environment_access, project_access TO {role};
GRANT UPDATE (id) ON users, environments TO {role};
GRANT SELECT, UPDATE ON projects, billing_accounts TO {role};
GRANT SELECT, INSERT, DELETE ON organizations, organization_members, organization_member_permissions TO {role};
GRANT UPDATE (id) ON organizations TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON rollout_meta, rollout_runs, rollout_owners, rollout_moved_projects,
    rollout_added_members, rollout_added_permissions, rollout_control, rollout_waves, rollout_batches,
    rollout_leases, rollout_rollbacks, rollout_jobs, rollout_claims, rollout_names TO {role};
GRANT SELECT ON rollout_schema_version TO {role};

-- section: read-only
GRANT SELECT ON users, organizations, organization_members, organization_member_permissions, projects,
    project_access, environments, environment_access, billing_accounts TO {role};
GRANT SELECT ON rollout_meta, rollout_runs, rollout_owners, rollout_moved_projects, rollout_added_members,
    rollout_added_permissions, rollout_control, rollout_waves, rollout_batches, rollout_leases,
    rollout_rollbacks, rollout_jobs, rollout_claims, rollout_names, rollout_schema_version TO {role};
