-- The platform tables (docs/data-model.md), exactly as the platform defines them.
-- `rollout db init --platform-schema` creates them for the demo and the tests; in production
-- they already exist and the job only reads and writes their rows.
-- {identity} is the one dialect difference (see rollout/dialect.py): PostgreSQL's identity column,
-- SQLite's rowid alias.

CREATE TABLE IF NOT EXISTS users (
    id           BIGINT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    email        TEXT NOT NULL,
    display_name TEXT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ NULL
);

CREATE TABLE IF NOT EXISTS organizations (
    id         {identity},
    name       TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    owner_id   BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL
);

-- Not one of the platform's documented constraints but the index any platform has on an ownership foreign key;
-- the job looks organizations up by owner in every batch.
CREATE INDEX IF NOT EXISTS organizations_owner_id_idx ON organizations (owner_id);

CREATE TABLE IF NOT EXISTS organization_members (
    organization_id BIGINT NOT NULL REFERENCES organizations (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE IF NOT EXISTS organization_member_permissions (
    organization_id BIGINT NOT NULL,
    user_id         BIGINT NOT NULL,
    permission      TEXT NOT NULL CHECK (permission IN ('plans', 'billing', 'projects:create', 'members')),
    PRIMARY KEY (organization_id, user_id, permission),
    FOREIGN KEY (organization_id, user_id) REFERENCES organization_members (organization_id, user_id)
);

CREATE TABLE IF NOT EXISTS projects (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    region          TEXT NOT NULL,
    owner_id        BIGINT NOT NULL REFERENCES users (id),
    organization_id BIGINT NULL REFERENCES organizations (id),
    status          TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS projects_owner_id_idx ON projects (owner_id);
CREATE INDEX IF NOT EXISTS projects_organization_id_idx ON projects (organization_id);

CREATE TABLE IF NOT EXISTS project_access (
    project_id TEXT NOT NULL REFERENCES projects (id),
    user_id    BIGINT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    PRIMARY KEY (project_id, user_id)
);

CREATE INDEX IF NOT EXISTS project_access_user_id_idx ON project_access (user_id);

CREATE TABLE IF NOT EXISTS environments (
    id         BIGINT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('production', 'staging', 'development')),
    UNIQUE (project_id, name)
);

CREATE TABLE IF NOT EXISTS environment_access (
    environment_id BIGINT NOT NULL REFERENCES environments (id),
    user_id        BIGINT NOT NULL REFERENCES users (id),
    role           TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'viewer')),
    PRIMARY KEY (environment_id, user_id)
);

CREATE TABLE IF NOT EXISTS billing_accounts (
    id              BIGINT PRIMARY KEY,
    user_id         BIGINT NULL UNIQUE REFERENCES users (id),
    organization_id BIGINT NULL UNIQUE REFERENCES organizations (id),
    payment_method  TEXT NULL,
    billing_address TEXT NULL,
    CHECK ((user_id IS NULL) <> (organization_id IS NULL))
);

CREATE TABLE IF NOT EXISTS subscriptions (
    project_id               TEXT PRIMARY KEY REFERENCES projects (id),
    billing_account_id       BIGINT NOT NULL REFERENCES billing_accounts (id),
    plan                     TEXT NOT NULL,
    storage_gb               INTEGER NOT NULL,
    development_environments INTEGER NOT NULL,
    user_licenses            INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS invoices (
    id                 BIGINT PRIMARY KEY,
    billing_account_id BIGINT NOT NULL REFERENCES billing_accounts (id),
    issued_at          TIMESTAMPTZ NOT NULL,
    amount_cents       BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS vouchers (
    code               TEXT PRIMARY KEY,
    billing_account_id BIGINT NOT NULL REFERENCES billing_accounts (id),
    amount_cents       BIGINT NOT NULL
);
