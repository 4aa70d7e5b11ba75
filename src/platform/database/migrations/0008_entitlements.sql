-- Entitlements (TIER-3, TIER-4): usage counters per period, idempotent track answers,
-- and concurrency leases. Account-scoped, under row-level security like 0002.

-- One row per account, feature and period. Metered features use the start of their UTC
-- day or month; static limits use the epoch (they never reset).
CREATE TABLE usage_counters (
  account_id text NOT NULL REFERENCES accounts (id),
  feature text NOT NULL,
  period_start timestamptz NOT NULL,
  used bigint NOT NULL CHECK (used >= 0),
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (account_id, feature, period_start)
);

-- The first answer to a tracked check with an idempotency key, returned to every retry.
CREATE TABLE entitlement_tracks (
  account_id text NOT NULL REFERENCES accounts (id),
  idempotency_key text NOT NULL,
  request_hash text NOT NULL,
  response jsonb,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (account_id, idempotency_key)
);

CREATE TABLE leases (
  id text PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (id),
  feature text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  released_at timestamptz
);
CREATE INDEX leases_active ON leases (account_id, feature, expires_at) WHERE released_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON usage_counters, entitlement_tracks, leases TO bulwark_app;
GRANT DELETE ON leases TO bulwark_app;

ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE entitlement_tracks ENABLE ROW LEVEL SECURITY;
ALTER TABLE leases ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON usage_counters
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON entitlement_tracks
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON leases
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
