-- The gate (issue 5 item 7) for counted features in one statement: look up a retried
-- idempotency key, check and track the entitlement (entitlement_count, migration 0008),
-- then reserve the credits (credit_reserve, migration 0012), all or nothing. A denial
-- after the track (credits short, or the key taken by a concurrent attempt) rolls the
-- track back with the inner block's subtransaction. Locks, in this order: the usage
-- counter row, the reservation's key, the account's grants in id order; nothing that
-- holds a key or a grant ever waits for a counter, so no path deadlocks with another.
--
-- Outcomes: 'allowed' (tracked when asked; reservation columns set when credits were
-- asked); 'limit' (the entitlement refused: nothing changed); 'insufficient' (credits
-- short: nothing changed, `used` is the counter as it stands); 'replayed' (the key had
-- reserved before: nothing changed, the reservation columns are the first reservation's).
CREATE FUNCTION gate_pass(
  p_account text, p_feature text, p_period_start timestamptz, p_track bigint, p_limit bigint, p_now timestamptz,
  p_reservation_id text, p_job_id text, p_job_type text, p_amount bigint, p_key text, p_hash text, p_expires_at timestamptz
) RETURNS TABLE (
  outcome text, applied boolean, used bigint,
  id text, job_id text, job_type text, amount bigint, status text, request_hash text, expires_at timestamptz
)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_applied boolean;
  v_used bigint;
  v_reserved record;
BEGIN
  PERFORM set_config('app.account_id', p_account, true);
  IF p_key IS NOT NULL THEN
    RETURN QUERY
      SELECT 'replayed'::text, NULL::boolean, NULL::bigint, r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at
        FROM credit_reservations r WHERE r.account_id = p_account AND r.idempotency_key = p_key;
    IF FOUND THEN RETURN; END IF;
  END IF;
  BEGIN
    SELECT c.applied, c.used INTO v_applied, v_used FROM entitlement_count(p_account, p_feature, p_period_start, p_track, p_limit, p_now) c;
    IF (p_track IS NOT NULL AND NOT v_applied) OR (p_track IS NULL AND p_limit IS NOT NULL AND v_used >= p_limit) THEN
      RETURN QUERY SELECT 'limit'::text, v_applied, v_used, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz;
      RETURN;
    END IF;
    IF p_key IS NULL THEN
      RETURN QUERY SELECT 'allowed'::text, v_applied, v_used, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz;
      RETURN;
    END IF;
    SELECT * INTO v_reserved FROM credit_reserve(p_account, p_reservation_id, p_job_id, p_job_type, p_amount, p_key, p_hash, p_now, p_expires_at);
    IF v_reserved.outcome = 'replayed' THEN
      RAISE EXCEPTION 'idempotency key taken concurrently' USING ERRCODE = 'BW409';
    END IF;
    RETURN QUERY SELECT 'allowed'::text, v_applied, v_used, v_reserved.id, v_reserved.job_id, v_reserved.job_type, v_reserved.amount,
      v_reserved.status, v_reserved.request_hash, v_reserved.expires_at;
    RETURN;
  EXCEPTION
    WHEN SQLSTATE 'BW402' THEN
      SELECT c.used INTO v_used FROM entitlement_count(p_account, p_feature, p_period_start, NULL, p_limit, p_now) c;
      RETURN QUERY SELECT 'insufficient'::text, false, v_used, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz;
    WHEN SQLSTATE 'BW409' THEN
      RETURN QUERY
        SELECT 'replayed'::text, NULL::boolean, NULL::bigint, r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at
          FROM credit_reservations r WHERE r.account_id = p_account AND r.idempotency_key = p_key;
  END;
END
$$;
GRANT EXECUTE ON FUNCTION gate_pass(text, text, timestamptz, bigint, bigint, timestamptz, text, text, text, bigint, text, text, timestamptz) TO bulwark_app;

