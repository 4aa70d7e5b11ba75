-- Operator dashboard sessions (UI-1): the admin token is exchanged once for a short-lived
-- session whose cookie the browser sends back; the token itself never reaches the browser.
-- Only a SHA-256 of the cookie's random value is stored, so a read of this table cannot
-- be replayed as a cookie. Not account-scoped: no row-level security (operators only).
CREATE TABLE admin_sessions (
  id text PRIMARY KEY,
  token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
  revoked_at timestamptz
);
-- Expired sessions are pruned by age.
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON admin_sessions TO bulwark_app;
