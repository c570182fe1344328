-- `rollout seed`: the few statements around the bulk load.

-- name: users_present
SELECT 1 FROM users LIMIT 1;

-- name: is_superuser
SHOW is_superuser;

-- name: defer_foreign_key_triggers
-- Only for this transaction (LOCAL): a superuser's bulk load skips PostgreSQL's per-row foreign-key
-- triggers; the seed then checks every foreign key set-based before it commits.
SET LOCAL session_replication_role = replica;

-- name: broken_foreign_keys
-- After a load with the foreign-key triggers off: every reference of the platform schema
-- (sql/schema/platform.sql) checked set-based; a row per reference, with its orphans.
SELECT 'organizations(owner_id) -> users' AS reference, COUNT(*) AS orphans FROM organizations c
WHERE c.owner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users p WHERE p.id = c.owner_id)
UNION ALL
SELECT 'organization_members(organization_id) -> organizations' AS reference, COUNT(*) AS orphans FROM organization_members c
WHERE c.organization_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM organizations p WHERE p.id = c.organization_id)
UNION ALL
SELECT 'organization_members(user_id) -> users' AS reference, COUNT(*) AS orphans FROM organization_members c
WHERE c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users p WHERE p.id = c.user_id)
UNION ALL
SELECT 'organization_member_permissions(organization_id, user_id) -> organization_members' AS reference, COUNT(*) AS orphans FROM organization_member_permissions c
WHERE c.organization_id IS NOT NULL AND c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM organization_members p WHERE p.organization_id = c.organization_id AND p.user_id = c.user_id)
UNION ALL
SELECT 'projects(owner_id) -> users' AS reference, COUNT(*) AS orphans FROM projects c
WHERE c.owner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users p WHERE p.id = c.owner_id)
UNION ALL
SELECT 'projects(organization_id) -> organizations' AS reference, COUNT(*) AS orphans FROM projects c
WHERE c.organization_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM organizations p WHERE p.id = c.organization_id)
UNION ALL
SELECT 'project_access(project_id) -> projects' AS reference, COUNT(*) AS orphans FROM project_access c
WHERE c.project_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = c.project_id)
UNION ALL
SELECT 'project_access(user_id) -> users' AS reference, COUNT(*) AS orphans FROM project_access c
WHERE c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users p WHERE p.id = c.user_id)
UNION ALL
SELECT 'environments(project_id) -> projects' AS reference, COUNT(*) AS orphans FROM environments c
WHERE c.project_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = c.project_id)
UNION ALL
SELECT 'environment_access(environment_id) -> environments' AS reference, COUNT(*) AS orphans FROM environment_access c
WHERE c.environment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM environments p WHERE p.id = c.environment_id)
UNION ALL
SELECT 'environment_access(user_id) -> users' AS reference, COUNT(*) AS orphans FROM environment_access c
WHERE c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users p WHERE p.id = c.user_id)
UNION ALL
SELECT 'billing_accounts(user_id) -> users' AS reference, COUNT(*) AS orphans FROM billing_accounts c
WHERE c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users p WHERE p.id = c.user_id)
UNION ALL
SELECT 'billing_accounts(organization_id) -> organizations' AS reference, COUNT(*) AS orphans FROM billing_accounts c
WHERE c.organization_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM organizations p WHERE p.id = c.organization_id)
UNION ALL
SELECT 'subscriptions(project_id) -> projects' AS reference, COUNT(*) AS orphans FROM subscriptions c
WHERE c.project_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = c.project_id)
UNION ALL
SELECT 'subscriptions(billing_account_id) -> billing_accounts' AS reference, COUNT(*) AS orphans FROM subscriptions c
WHERE c.billing_account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_accounts p WHERE p.id = c.billing_account_id)
UNION ALL
SELECT 'invoices(billing_account_id) -> billing_accounts' AS reference, COUNT(*) AS orphans FROM invoices c
WHERE c.billing_account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_accounts p WHERE p.id = c.billing_account_id)
UNION ALL
SELECT 'vouchers(billing_account_id) -> billing_accounts' AS reference, COUNT(*) AS orphans FROM vouchers c
WHERE c.billing_account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_accounts p WHERE p.id = c.billing_account_id);

-- Bulk loads, one per platform table: COPY on PostgreSQL, executemany of `?` rows on SQLite
-- (rollout.store.queries.load). The column order is the order of the generated rows.

-- name: load_users
COPY users (id, username, email, display_name, created_at, deleted_at) FROM STDIN;

-- name: load_users@sqlite
INSERT INTO users (id, username, email, display_name, created_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?);

-- name: load_organizations
-- No id: the identity column numbers them, and the loader reads the numbers back by name.
COPY organizations (name, label, owner_id, created_at) FROM STDIN;

-- name: load_organizations@sqlite
INSERT INTO organizations (name, label, owner_id, created_at) VALUES (?, ?, ?, ?);

-- name: load_organization_members
COPY organization_members (organization_id, user_id, created_at) FROM STDIN;

-- name: load_organization_members@sqlite
INSERT INTO organization_members (organization_id, user_id, created_at) VALUES (?, ?, ?);

-- name: load_organization_member_permissions
COPY organization_member_permissions (organization_id, user_id, permission) FROM STDIN;

-- name: load_organization_member_permissions@sqlite
INSERT INTO organization_member_permissions (organization_id, user_id, permission) VALUES (?, ?, ?);

-- name: load_projects
COPY projects (id, title, region, owner_id, organization_id, status, created_at) FROM STDIN;

-- name: load_projects@sqlite
INSERT INTO projects (id, title, region, owner_id, organization_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: load_project_access
COPY project_access (project_id, user_id, role) FROM STDIN;

-- name: load_project_access@sqlite
INSERT INTO project_access (project_id, user_id, role) VALUES (?, ?, ?);

-- name: load_environments
COPY environments (id, project_id, name, type) FROM STDIN;

-- name: load_environments@sqlite
INSERT INTO environments (id, project_id, name, type) VALUES (?, ?, ?, ?);

-- name: load_environment_access
COPY environment_access (environment_id, user_id, role) FROM STDIN;

-- name: load_environment_access@sqlite
INSERT INTO environment_access (environment_id, user_id, role) VALUES (?, ?, ?);

-- name: load_billing_accounts
COPY billing_accounts (id, user_id, organization_id, payment_method, billing_address) FROM STDIN;

-- name: load_billing_accounts@sqlite
INSERT INTO billing_accounts (id, user_id, organization_id, payment_method, billing_address) VALUES (?, ?, ?, ?, ?);

-- name: load_subscriptions
COPY subscriptions (project_id, billing_account_id, plan, storage_gb, development_environments, user_licenses) FROM STDIN;

-- name: load_subscriptions@sqlite
INSERT INTO subscriptions (project_id, billing_account_id, plan, storage_gb, development_environments, user_licenses) VALUES (?, ?, ?, ?, ?, ?);

-- name: load_invoices
COPY invoices (id, billing_account_id, issued_at, amount_cents) FROM STDIN;

-- name: load_invoices@sqlite
INSERT INTO invoices (id, billing_account_id, issued_at, amount_cents) VALUES (?, ?, ?, ?);

-- name: load_vouchers
COPY vouchers (code, billing_account_id, amount_cents) FROM STDIN;

-- name: load_vouchers@sqlite
INSERT INTO vouchers (code, billing_account_id, amount_cents) VALUES (?, ?, ?);
