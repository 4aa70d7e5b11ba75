-- Users of an external identity provider (Supabase, Auth0, ...) acting through a trusted
-- service (AUTH-7, KEY-4). Each (issuer, subject) maps to one Bulwark user and account,
-- provisioned on first sight. Never linked by email: an identity provider that does not
-- verify emails would otherwise hand over existing accounts.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;

CREATE TABLE external_identities (
  issuer text NOT NULL,
  subject text NOT NULL,
  user_id text NOT NULL REFERENCES users (id),
  account_id text NOT NULL REFERENCES accounts (id),
  created_at timestamptz NOT NULL,
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_account ON external_identities (account_id);

GRANT SELECT, INSERT ON external_identities TO bulwark_app;
ALTER TABLE external_identities ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON external_identities
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
