-- Credit reservations in one statement each (CRD-2, CRD-3, CRD-9). A reserve, confirm or
-- release is one call here, so the rows it locks are held only while PostgreSQL runs it
-- and commits, never across network round trips: on one hot account the grant row's lock
-- was held for six round trips before (bench/RESULTS.md). The rules are the same as before:
--
-- * every path locks in the same order: the reservation (by id, or its idempotency key),
--   then the account's grants in id order;
-- * rows are locked FOR NO KEY UPDATE (their keys never change), so inserts that only
--   reference a locked grant or reservation (ledger and allocation rows of a concurrent
--   confirm, whose foreign keys take KEY SHARE) do not wait for it;
-- * amounts are read from the database only;
-- * spending order is the one of src/modules/credits/allocation.ts (soonest expiry first,
--   no expiry last, then oldest, then smallest id in byte order), which stays the
--   specification: test/credits/allocation-sql.test.ts checks this function against it.
--
-- Row-level security applies: each function sets the account context first and runs with
-- the caller's rights.

CREATE FUNCTION credit_reserve(
  p_account text, p_id text, p_job_id text, p_job_type text, p_amount bigint,
  p_key text, p_hash text, p_now timestamptz, p_expires_at timestamptz
) RETURNS TABLE (outcome text, id text, job_id text, job_type text, amount bigint, status text, request_hash text, expires_at timestamptz)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_left bigint := p_amount;
  v_take bigint;
  v_grant record;
  v_grant_ids text[] := ARRAY[]::text[];
  v_amounts bigint[] := ARRAY[]::bigint[];
BEGIN
  PERFORM set_config('app.account_id', p_account, true);
  -- Claim the idempotency key first: a concurrent reserve with the same key waits here.
  INSERT INTO credit_reservations (id, account_id, job_id, job_type, amount, status, idempotency_key, request_hash, created_at, expires_at)
    VALUES (p_id, p_account, p_job_id, p_job_type, p_amount, 'held', p_key, p_hash, p_now, p_expires_at)
    ON CONFLICT (account_id, idempotency_key) DO NOTHING;
  IF NOT FOUND THEN
    RETURN QUERY
      SELECT 'replayed'::text, r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at
        FROM credit_reservations r WHERE r.account_id = p_account AND r.idempotency_key = p_key;
    RETURN;
  END IF;
  -- Lock the usable grants in id order, and allocate from exactly the rows locked (the
  -- versions the locks were taken on), in spending order.
  FOR v_grant IN
    WITH locked AS (
      SELECT c.id, c.remaining, c.expires_at, c.created_at FROM credit_grants c
       WHERE c.account_id = p_account AND c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > p_now)
       ORDER BY c.id FOR NO KEY UPDATE
    )
    SELECT l.id, l.remaining FROM locked l
     ORDER BY l.expires_at ASC NULLS LAST, l.created_at ASC, l.id COLLATE "C" ASC
  LOOP
    EXIT WHEN v_left = 0;
    v_take := least(v_grant.remaining, v_left);
    v_grant_ids := v_grant_ids || v_grant.id;
    v_amounts := v_amounts || v_take;
    v_left := v_left - v_take;
  END LOOP;
  IF v_left > 0 THEN
    -- Aborts the statement (and the caller's transaction): the claimed key goes too.
    RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'BW402';
  END IF;
  UPDATE credit_grants AS c SET remaining = c.remaining - a.amount
    FROM unnest(v_grant_ids, v_amounts) AS a(grant_id, amount)
   WHERE c.id = a.grant_id AND c.account_id = p_account;
  INSERT INTO credit_reservation_allocations (reservation_id, grant_id, account_id, amount)
    SELECT p_id, a.grant_id, p_account, a.amount FROM unnest(v_grant_ids, v_amounts) AS a(grant_id, amount);
  INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
    SELECT p_account, 'hold', -a.amount, a.grant_id, p_id, p_now FROM unnest(v_grant_ids, v_amounts) AS a(grant_id, amount);
  RETURN QUERY SELECT 'held'::text, p_id, p_job_id, p_job_type, p_amount, 'held'::text, p_hash, p_expires_at;
END
$$;
GRANT EXECUTE ON FUNCTION credit_reserve(text, text, text, text, bigint, text, text, timestamptz, timestamptz) TO bulwark_app;

-- Confirm (target 'confirmed': the hold becomes spend) or release (target 'released': each
-- allocation goes back to its grant, even an expired one, which the sweeper then writes
-- off). Outcomes: 'settled'; 'unchanged' (already in the target state: the same answer
-- again); 'conflict' (in the other final state); 'not_found' (unknown, or another
-- account's: nothing is revealed); 'not_expired' (the sweeper's re-check under the lock,
-- when p_only_if_expired_at is given).
CREATE FUNCTION credit_settle(p_account text, p_id text, p_target text, p_now timestamptz, p_only_if_expired_at timestamptz)
  RETURNS TABLE (outcome text, id text, job_id text, job_type text, amount bigint, status text, expires_at timestamptz)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_reservation record;
BEGIN
  IF p_target NOT IN ('confirmed', 'released') THEN
    RAISE EXCEPTION 'credit_settle: bad target %', p_target;
  END IF;
  PERFORM set_config('app.account_id', p_account, true);
  SELECT r.id, r.job_id, r.job_type, r.amount, r.status, r.expires_at INTO v_reservation
    FROM credit_reservations r WHERE r.id = p_id AND r.account_id = p_account FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::timestamptz;
    RETURN;
  END IF;
  IF v_reservation.status = p_target OR v_reservation.status <> 'held'
     OR (p_only_if_expired_at IS NOT NULL AND v_reservation.expires_at > p_only_if_expired_at) THEN
    RETURN QUERY SELECT
      CASE WHEN v_reservation.status = p_target THEN 'unchanged' WHEN v_reservation.status <> 'held' THEN 'conflict' ELSE 'not_expired' END,
      v_reservation.id, v_reservation.job_id, v_reservation.job_type, v_reservation.amount, v_reservation.status, v_reservation.expires_at;
    RETURN;
  END IF;
  IF p_target = 'released' THEN
    PERFORM 1 FROM credit_grants c
      WHERE c.id IN (SELECT a.grant_id FROM credit_reservation_allocations a WHERE a.reservation_id = p_id AND a.account_id = p_account)
      ORDER BY c.id FOR NO KEY UPDATE;
    UPDATE credit_grants AS c SET remaining = c.remaining + a.amount
      FROM credit_reservation_allocations a
     WHERE a.reservation_id = p_id AND a.account_id = p_account AND c.id = a.grant_id;
  END IF;
  INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
    SELECT p_account,
           CASE WHEN p_target = 'confirmed' THEN 'spend' ELSE 'release' END,
           CASE WHEN p_target = 'confirmed' THEN -a.amount ELSE a.amount END,
           a.grant_id, p_id, p_now
      FROM credit_reservation_allocations a WHERE a.reservation_id = p_id AND a.account_id = p_account
     ORDER BY a.grant_id;
  UPDATE credit_reservations SET status = p_target, settled_at = p_now WHERE credit_reservations.id = p_id;
  RETURN QUERY SELECT 'settled'::text, v_reservation.id, v_reservation.job_id, v_reservation.job_type, v_reservation.amount, p_target, v_reservation.expires_at;
END
$$;
GRANT EXECUTE ON FUNCTION credit_settle(text, text, text, timestamptz, timestamptz) TO bulwark_app;
