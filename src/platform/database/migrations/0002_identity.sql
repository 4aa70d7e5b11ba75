-- Identity: accounts, users, sessions (refresh-token families), password resets, API keys.
-- Row-level security (ACC-3): the application works as the role bulwark_app, which owns
-- no table and cannot bypass RLS. Account-scoped rows are visible only inside a
-- transaction that set app.account_id to their account, or one that declared itself a
-- system context (authentication look-ups, operator routes) with app.system = 'on'.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulwark_app') THEN
    CREATE ROLE bulwark_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO bulwark_app;
GRANT SELECT ON schema_migrations TO bulwark_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON scheduled_job_runs TO bulwark_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO bulwark_app;

-- The account the current transaction acts for; NULL when none was set.
CREATE FUNCTION app_account_id() RETURNS text
  LANGUAGE sql STABLE AS $$ SELECT NULLIF(current_setting('app.account_id', true), '') $$;

-- True in a transaction that declared itself a system context.
CREATE FUNCTION app_is_system() RETURNS boolean
  LANGUAGE sql STABLE AS $$ SELECT coalesce(current_setting('app.system', true), '') = 'on' $$;

CREATE TABLE accounts (
  id text PRIMARY KEY,
  name text,
  plan text NOT NULL DEFAULT 'FREE',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
  stripe_customer_id text UNIQUE,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE users (
  id text PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (id),
  email text NOT NULL CHECK (email = lower(email)),
  name text,
  password_hash text,
  role text NOT NULL CHECK (role IN ('owner', 'member')),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_email_unique ON users (email) WHERE status <> 'deleted';
CREATE INDEX users_account ON users (account_id);

-- One row per refresh token; a family is one login's chain of rotations.
CREATE TABLE refresh_tokens (
  id text PRIMARY KEY,
  family_id text NOT NULL,
  user_id text NOT NULL REFERENCES users (id),
  account_id text NOT NULL REFERENCES accounts (id),
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  family_expires_at timestamptz NOT NULL,
  rotated_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE password_reset_tokens (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id),
  account_id text NOT NULL REFERENCES accounts (id),
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (id),
  prefix text NOT NULL,
  label text,
  secret_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

GRANT SELECT, INSERT, UPDATE ON accounts, users, refresh_tokens, password_reset_tokens, api_keys TO bulwark_app;

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_reset_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;

CREATE POLICY account_isolation ON accounts
  USING (app_is_system() OR id = app_account_id())
  WITH CHECK (app_is_system() OR id = app_account_id());
CREATE POLICY account_isolation ON users
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON refresh_tokens
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON password_reset_tokens
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON api_keys
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
