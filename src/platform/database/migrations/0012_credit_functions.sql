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

-- Many reserves in one statement and one commit (group commit), for concurrent callers:
-- the service coalesces them (src/platform/batching/micro-batcher.ts). Items are taken in
-- (account, position) order. For each account the usable grants are locked once, in id
-- order, and spent from in memory in spending order; each item is then, in its order:
-- 'replayed' (its key reserved before, in an earlier transaction or earlier in this
-- batch), 'insufficient' (nothing written for it), or 'held' (its key claimed, its
-- allocations and hold ledger rows written). The grants' new remainders are written once
-- per account at the end. No subtransactions: nothing an item writes needs undoing, because
-- every check comes before its first write. An error fails the whole batch (the service
-- then retries its items one by one with credit_reserve).
CREATE FUNCTION credit_reserve_many(
  p_accounts text[], p_ids text[], p_job_ids text[], p_job_types text[], p_amounts bigint[],
  p_keys text[], p_hashes text[], p_now timestamptz, p_expires_at timestamptz
) RETURNS TABLE (position_in_batch bigint, outcome text, id text, job_id text, job_type text, amount bigint, status text, request_hash text, expires_at timestamptz)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_item record;
  v_account text;
  v_grant_ids text[];
  v_remaining bigint[];
  v_changed boolean[];
  v_take bigint[];
  v_left bigint;
  v_index int;
  v_count int;
  v_inserted boolean;
  v_taken_ids text[];
  v_taken_amounts bigint[];
BEGIN
  FOR v_item IN
    SELECT k.account_id, k.i FROM unnest(p_accounts) WITH ORDINALITY AS k(account_id, i) ORDER BY k.account_id, k.i
  LOOP
    IF v_account IS DISTINCT FROM v_item.account_id THEN
      IF v_account IS NOT NULL THEN
        UPDATE credit_grants AS c SET remaining = w.remaining
          FROM unnest(v_grant_ids, v_remaining, v_changed) AS w(grant_id, remaining, changed)
         WHERE w.changed AND c.id = w.grant_id AND c.account_id = v_account;
      END IF;
      v_account := v_item.account_id;
      PERFORM set_config('app.account_id', v_account, true);
      -- Lock in id order; keep them in spending order (allocation.ts).
      SELECT coalesce(array_agg(l.id ORDER BY l.expires_at ASC NULLS LAST, l.created_at ASC, l.id COLLATE "C" ASC), ARRAY[]::text[]),
             coalesce(array_agg(l.remaining ORDER BY l.expires_at ASC NULLS LAST, l.created_at ASC, l.id COLLATE "C" ASC), ARRAY[]::bigint[])
        INTO v_grant_ids, v_remaining
        FROM (
          SELECT c.id, c.remaining, c.expires_at, c.created_at FROM credit_grants c
           WHERE c.account_id = v_account AND c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > p_now)
           ORDER BY c.id FOR NO KEY UPDATE
        ) l;
      v_count := coalesce(array_length(v_grant_ids, 1), 0);
      v_changed := array_fill(false, ARRAY[v_count]);
    END IF;

    -- A key that reserved before (also earlier in this batch) answers its reservation.
    RETURN QUERY
      SELECT v_item.i, 'replayed'::text, r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at
        FROM credit_reservations r WHERE r.account_id = v_account AND r.idempotency_key = p_keys[v_item.i];
    CONTINUE WHEN FOUND;

    v_left := p_amounts[v_item.i];
    v_take := array_fill(0::bigint, ARRAY[v_count]);
    FOR v_index IN 1 .. v_count LOOP
      EXIT WHEN v_left = 0;
      IF v_remaining[v_index] > 0 THEN
        v_take[v_index] := least(v_remaining[v_index], v_left);
        v_left := v_left - v_take[v_index];
      END IF;
    END LOOP;
    IF v_left > 0 THEN
      RETURN QUERY SELECT v_item.i, 'insufficient'::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz;
      CONTINUE;
    END IF;

    -- Claim the key. Taken meanwhile by a concurrent transaction (which we waited for): replayed.
    INSERT INTO credit_reservations (id, account_id, job_id, job_type, amount, status, idempotency_key, request_hash, created_at, expires_at)
      VALUES (p_ids[v_item.i], v_account, p_job_ids[v_item.i], p_job_types[v_item.i], p_amounts[v_item.i], 'held', p_keys[v_item.i],
              p_hashes[v_item.i], p_now, p_expires_at)
      ON CONFLICT (account_id, idempotency_key) DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_inserted := v_count > 0;
    v_count := coalesce(array_length(v_grant_ids, 1), 0);
    IF NOT v_inserted THEN
      RETURN QUERY
        SELECT v_item.i, 'replayed'::text, r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at
          FROM credit_reservations r WHERE r.account_id = v_account AND r.idempotency_key = p_keys[v_item.i];
      CONTINUE;
    END IF;

    v_taken_ids := ARRAY[]::text[];
    v_taken_amounts := ARRAY[]::bigint[];
    FOR v_index IN 1 .. v_count LOOP
      IF v_take[v_index] > 0 THEN
        v_remaining[v_index] := v_remaining[v_index] - v_take[v_index];
        v_changed[v_index] := true;
        v_taken_ids := v_taken_ids || v_grant_ids[v_index];
        v_taken_amounts := v_taken_amounts || v_take[v_index];
      END IF;
    END LOOP;
    INSERT INTO credit_reservation_allocations (reservation_id, grant_id, account_id, amount)
      SELECT p_ids[v_item.i], a.grant_id, v_account, a.amount FROM unnest(v_taken_ids, v_taken_amounts) AS a(grant_id, amount);
    INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
      SELECT v_account, 'hold', -a.amount, a.grant_id, p_ids[v_item.i], p_now FROM unnest(v_taken_ids, v_taken_amounts) AS a(grant_id, amount);
    RETURN QUERY SELECT v_item.i, 'held'::text, p_ids[v_item.i], p_job_ids[v_item.i], p_job_types[v_item.i], p_amounts[v_item.i],
      'held'::text, p_hashes[v_item.i], p_expires_at;
  END LOOP;
  IF v_account IS NOT NULL THEN
    UPDATE credit_grants AS c SET remaining = w.remaining
      FROM unnest(v_grant_ids, v_remaining, v_changed) AS w(grant_id, remaining, changed)
     WHERE w.changed AND c.id = w.grant_id AND c.account_id = v_account;
  END IF;
END
$$;
GRANT EXECUTE ON FUNCTION credit_reserve_many(text[], text[], text[], text[], bigint[], text[], text[], timestamptz, timestamptz) TO bulwark_app;

-- Many confirms and releases in one statement and one commit. Items are taken per account
-- (account order); for each account its reservations in the batch are locked first, in id
-- order, and then, if any is released, the grants they came from, in id order: the same
-- order as credit_settle, so batches and single calls never deadlock. Then each item, in
-- id order, is settled exactly as credit_settle would (same outcomes). No subtransactions.
CREATE FUNCTION credit_settle_many(p_accounts text[], p_ids text[], p_targets text[], p_now timestamptz)
  RETURNS TABLE (position_in_batch bigint, outcome text, id text, job_id text, job_type text, amount bigint, status text, expires_at timestamptz)
  LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_account record;
  v_item record;
  v_reservation record;
BEGIN
  IF EXISTS (SELECT 1 FROM unnest(p_targets) AS t(target) WHERE t.target NOT IN ('confirmed', 'released')) THEN
    RAISE EXCEPTION 'credit_settle_many: bad target';
  END IF;
  FOR v_account IN SELECT DISTINCT a.account_id FROM unnest(p_accounts) AS a(account_id) ORDER BY a.account_id LOOP
    PERFORM set_config('app.account_id', v_account.account_id, true);
    PERFORM 1 FROM credit_reservations r
      WHERE r.account_id = v_account.account_id
        AND r.id IN (SELECT k.reservation_id FROM unnest(p_accounts, p_ids) AS k(account_id, reservation_id) WHERE k.account_id = v_account.account_id)
      ORDER BY r.id FOR NO KEY UPDATE;
    PERFORM 1 FROM credit_grants c
      WHERE c.id IN (
        SELECT a.grant_id FROM credit_reservation_allocations a
          JOIN unnest(p_accounts, p_ids, p_targets) AS k(account_id, reservation_id, target)
            ON k.account_id = v_account.account_id AND k.target = 'released' AND a.reservation_id = k.reservation_id
         WHERE a.account_id = v_account.account_id)
      ORDER BY c.id FOR NO KEY UPDATE;
    FOR v_item IN
      SELECT k.reservation_id, k.target, k.i FROM unnest(p_accounts, p_ids, p_targets) WITH ORDINALITY AS k(account_id, reservation_id, target, i)
       WHERE k.account_id = v_account.account_id ORDER BY k.reservation_id, k.i
    LOOP
      SELECT r.id, r.job_id, r.job_type, r.amount, r.status, r.expires_at INTO v_reservation
        FROM credit_reservations r WHERE r.id = v_item.reservation_id AND r.account_id = v_account.account_id;
      IF NOT FOUND THEN
        RETURN QUERY SELECT v_item.i, 'not_found'::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::timestamptz;
        CONTINUE;
      END IF;
      IF v_reservation.status <> 'held' THEN
        RETURN QUERY SELECT v_item.i, CASE WHEN v_reservation.status = v_item.target THEN 'unchanged' ELSE 'conflict' END,
          v_reservation.id, v_reservation.job_id, v_reservation.job_type, v_reservation.amount, v_reservation.status, v_reservation.expires_at;
        CONTINUE;
      END IF;
      IF v_item.target = 'released' THEN
        UPDATE credit_grants AS c SET remaining = c.remaining + a.amount
          FROM credit_reservation_allocations a
         WHERE a.reservation_id = v_item.reservation_id AND a.account_id = v_account.account_id AND c.id = a.grant_id;
      END IF;
      INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
        SELECT v_account.account_id,
               CASE WHEN v_item.target = 'confirmed' THEN 'spend' ELSE 'release' END,
               CASE WHEN v_item.target = 'confirmed' THEN -a.amount ELSE a.amount END,
               a.grant_id, v_item.reservation_id, p_now
          FROM credit_reservation_allocations a WHERE a.reservation_id = v_item.reservation_id AND a.account_id = v_account.account_id
         ORDER BY a.grant_id;
      UPDATE credit_reservations SET status = v_item.target, settled_at = p_now WHERE credit_reservations.id = v_item.reservation_id;
      RETURN QUERY SELECT v_item.i, 'settled'::text, v_reservation.id, v_reservation.job_id, v_reservation.job_type, v_reservation.amount,
        v_item.target, v_reservation.expires_at;
    END LOOP;
  END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION credit_settle_many(text[], text[], text[], timestamptz) TO bulwark_app;
