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

-- One round trip for a counted check (the hot path): sets the account context for row-level
-- security, then either reads the counter or adds `track` only if the total stays within
-- the limit (NULL = unlimited). Runs with the caller's rights, so RLS still applies.
CREATE FUNCTION entitlement_count(
  p_account text, p_feature text, p_period_start timestamptz, p_track bigint, p_limit bigint, p_now timestamptz
) RETURNS TABLE (applied boolean, used bigint)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_used bigint;
BEGIN
  PERFORM set_config('app.account_id', p_account, true);
  IF p_track IS NOT NULL AND (p_limit IS NULL OR p_track <= p_limit) THEN
    INSERT INTO usage_counters AS counter (account_id, feature, period_start, used, updated_at)
      VALUES (p_account, p_feature, p_period_start, p_track, p_now)
    ON CONFLICT (account_id, feature, period_start)
      DO UPDATE SET used = counter.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
      WHERE p_limit IS NULL OR counter.used + EXCLUDED.used <= p_limit
    RETURNING counter.used INTO v_used;
    IF v_used IS NOT NULL THEN
      RETURN QUERY SELECT true, v_used;
      RETURN;
    END IF;
  END IF;
  SELECT c.used INTO v_used FROM usage_counters c
   WHERE c.account_id = p_account AND c.feature = p_feature AND c.period_start = p_period_start;
  RETURN QUERY SELECT false, coalesce(v_used, 0);
END
$$;
GRANT EXECUTE ON FUNCTION entitlement_count(text, text, timestamptz, bigint, bigint, timestamptz) TO bulwark_app;
