-- Batched entitlement counters (TIER-3 under load): many checks or tracks in one round trip.
-- The service coalesces concurrent requests (src/platform/batching/micro-batcher.ts) and
-- sends each batch as one statement; every request still gets its own exact answer.

-- Reads the counters of many (account, feature, period) keys at once, answering one row per
-- position of the input arrays (0 where no counter exists yet). It reads across accounts,
-- so it sets the system context for its own statement only (the same deliberate exception
-- as asSystem); it returns nothing but the counters asked for, each to the request of the
-- account it belongs to.
CREATE FUNCTION entitlement_read_many(p_accounts text[], p_features text[], p_periods timestamptz[])
  RETURNS TABLE (position_in_batch bigint, used bigint)
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.system', 'on', true);
  RETURN QUERY
    SELECT k.i, coalesce(c.used, 0)::bigint
      FROM unnest(p_accounts, p_features, p_periods) WITH ORDINALITY AS k(account_id, feature, period_start, i)
      LEFT JOIN usage_counters c
        ON c.account_id = k.account_id AND c.feature = k.feature AND c.period_start = k.period_start
     ORDER BY k.i;
  PERFORM set_config('app.system', 'off', true);
END
$$;
GRANT EXECUTE ON FUNCTION entitlement_read_many(text[], text[], timestamptz[]) TO bulwark_app;

-- Applies many tracked checks in one transaction (group commit). Requests are taken key by
-- key in (account, feature, period) order, so concurrent batches lock counter rows in the
-- same order and cannot deadlock, and within a key in their order in the batch. Each
-- request adds its units only if the total stays within its limit (NULL = unlimited),
-- exactly like entitlement_count: under the row lock, against the latest total, so two
-- requests can never both take the last unit. Row-level security applies: the account
-- context is set to each key's account before its rows are touched.
CREATE FUNCTION entitlement_track_many(
  p_accounts text[], p_features text[], p_periods timestamptz[], p_limits bigint[], p_tracks bigint[], p_now timestamptz
) RETURNS TABLE (position_in_batch bigint, applied boolean, used bigint)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  v_account text;
  v_feature text;
  v_period timestamptz;
  v_used bigint;
  v_changed boolean := false;
BEGIN
  FOR r IN
    SELECT k.account_id, k.feature, k.period_start, k.i
      FROM unnest(p_accounts, p_features, p_periods) WITH ORDINALITY AS k(account_id, feature, period_start, i)
     ORDER BY k.account_id, k.feature, k.period_start, k.i
  LOOP
    IF v_account IS DISTINCT FROM r.account_id OR v_feature IS DISTINCT FROM r.feature OR v_period IS DISTINCT FROM r.period_start THEN
      IF v_changed THEN
        UPDATE usage_counters SET used = v_used, updated_at = p_now
         WHERE account_id = v_account AND feature = v_feature AND period_start = v_period;
      END IF;
      v_account := r.account_id;
      v_feature := r.feature;
      v_period := r.period_start;
      v_changed := false;
      PERFORM set_config('app.account_id', v_account, true);
      SELECT c.used INTO v_used FROM usage_counters c
       WHERE c.account_id = v_account AND c.feature = v_feature AND c.period_start = v_period FOR UPDATE;
      IF NOT FOUND THEN
        INSERT INTO usage_counters (account_id, feature, period_start, used, updated_at)
          VALUES (v_account, v_feature, v_period, 0, p_now)
          ON CONFLICT (account_id, feature, period_start) DO NOTHING;
        SELECT c.used INTO v_used FROM usage_counters c
         WHERE c.account_id = v_account AND c.feature = v_feature AND c.period_start = v_period FOR UPDATE;
      END IF;
    END IF;
    IF p_limits[r.i] IS NULL OR v_used + p_tracks[r.i] <= p_limits[r.i] THEN
      v_used := v_used + p_tracks[r.i];
      v_changed := true;
      position_in_batch := r.i; applied := true; used := v_used;
    ELSE
      position_in_batch := r.i; applied := false; used := v_used;
    END IF;
    RETURN NEXT;
  END LOOP;
  IF v_changed THEN
    UPDATE usage_counters SET used = v_used, updated_at = p_now
     WHERE account_id = v_account AND feature = v_feature AND period_start = v_period;
  END IF;
END
$$;
GRANT EXECUTE ON FUNCTION entitlement_track_many(text[], text[], timestamptz[], bigint[], bigint[], timestamptz) TO bulwark_app;
