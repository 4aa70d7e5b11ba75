-- Batches that write set by set (issue 5's benchmarks). A batch of reserves, gates or
-- settlements is one statement and one commit (group commit, src/platform/batching/
-- micro-batcher.ts); until now each of its items was decided AND written in its turn, one
-- small INSERT after another, so PostgreSQL spent ~110 us per reserve and ~90 us per
-- confirm of a batch while holding the account's grant and counter locks: on one hot
-- account that time is the ceiling. Here every item is first decided in memory, in batch
-- order, against the counters and grants as the items before it left them (exactly the
-- rules of gate_pass, credit_reserve and credit_settle), and then the batch's rows are
-- written with one INSERT or UPDATE per table.
--
-- Every check comes before the first write, so nothing needs undoing and no item needs a
-- subtransaction (gate_pass needs one per call; more than 64 in one transaction overflow
-- PostgreSQL's subtransaction cache). One case cannot be decided in advance: an
-- idempotency key claimed by a concurrent transaction after the batch looked it up. Then
-- the batch fails with BW409 as a whole (nothing of it stays) and the service runs its
-- items one by one with the single-item functions, which answer such a key as replayed.
--
-- Every lookup of the batch's rows is by key (= ANY of an array, or a LATERAL subquery with
-- LIMIT 1), never a join the planner could turn into a scan of the account's rows: with a
-- plain join it did exactly that (the account's id is a constant of the statement), and the
-- cost grew with every reservation the account had ever made. The functions also run with
-- enable_seqscan off: PL/pgSQL keeps a generic plan per statement for the life of a
-- connection, and one planned while a table was still small (a new installation, a
-- benchmark's fresh database) scanned the whole table on every call once it had grown.
--
-- Locks, per account in account order (as before): the batch's counter rows of that account
-- in (feature, period) order (the order of entitlement_track_many), then the account's
-- usable grants in id order; after every account, the new reservations' keys. Settlements
-- lock, per account, the batch's reservations in id order, then the grants of the released
-- ones in id order.

-- Gates on counted features (issue 5 item 7), and reserves (a gate without a feature:
-- credit_reserve_many below). Per item: 'replayed' (its key reserved before, also earlier
-- in this batch: nothing changes), 'limit' (the entitlement refuses, as entitlement_count
-- decides), 'insufficient' (credits short: nothing changes, the track neither), or
-- 'allowed' (the key claimed, the credits held, the track added). `used` is the counter
-- after the item (before it, when refused); both are NULL for an item without a feature.
CREATE FUNCTION gate_pass_many(
  p_accounts text[], p_features text[], p_periods timestamptz[], p_tracks bigint[], p_limits bigint[], p_now timestamptz,
  p_ids text[], p_job_ids text[], p_job_types text[], p_amounts bigint[], p_keys text[], p_hashes text[], p_expires_at timestamptz
) RETURNS TABLE (
  position_in_batch bigint, outcome text, applied boolean, used bigint,
  id text, job_id text, job_type text, amount bigint, status text, request_hash text, expires_at timestamptz
)
  LANGUAGE plpgsql SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
  -- One account of the batch at a time, in account order, with its positions in batch order.
  v_group record;
  v_account text;
  v_slice bigint[];
  v_i bigint;
  v_counter record;
  v_keyed boolean;
  v_featured boolean;
  -- The account's counters (parallel arrays): feature, period, used, changed.
  v_features text[];
  v_periods timestamptz[];
  v_used bigint[];
  v_counter_changed boolean[];
  v_c int;
  v_now_used bigint;
  v_found bigint;
  -- The account's usable grants in spending order; the ones before v_first are used up.
  v_grant_ids text[];
  v_remaining bigint[];
  v_grant_changed boolean[];
  v_grants int;
  v_first int;
  v_available bigint;
  v_left bigint;
  v_take bigint;
  v_index int;
  v_existing bigint[];
  v_repeated bigint[];
  v_claimed text[];
  -- The batch's decisions and writes, for every account.
  v_positions bigint[] := ARRAY[]::bigint[];
  v_outcomes text[] := ARRAY[]::text[];
  v_applied boolean[] := ARRAY[]::boolean[];
  v_used_after bigint[] := ARRAY[]::bigint[];
  v_answer_accounts text[] := ARRAY[]::text[];
  v_answer_keys text[] := ARRAY[]::text[];
  v_new bigint[] := ARRAY[]::bigint[];
  v_alloc_positions bigint[] := ARRAY[]::bigint[];
  v_alloc_grants text[] := ARRAY[]::text[];
  v_alloc_amounts bigint[] := ARRAY[]::bigint[];
  v_write_grants text[] := ARRAY[]::text[];
  v_write_remaining bigint[] := ARRAY[]::bigint[];
  v_write_accounts text[] := ARRAY[]::text[];
  v_write_features text[] := ARRAY[]::text[];
  v_write_periods timestamptz[] := ARRAY[]::timestamptz[];
  v_write_used bigint[] := ARRAY[]::bigint[];
  v_inserted int;
BEGIN
  -- Every statement below names its account explicitly; they run in the system context
  -- (as entitlement_read_many does) so that one statement can serve the whole batch.
  PERFORM set_config('app.system', 'on', true);
  -- The items whose key reserved before (the key as a column, not p_keys[i]: row-level
  -- security lets only leakproof conditions into an index scan, and an array subscript is
  -- not one), and the items whose (account, key) the batch names more than once.
  SELECT coalesce(array_agg(k.i), ARRAY[]::bigint[]) INTO v_existing
    FROM unnest(p_accounts, p_keys) WITH ORDINALITY AS k(account_id, reservation_key, i)
    CROSS JOIN LATERAL (
      SELECT 1 FROM credit_reservations r WHERE r.account_id = k.account_id AND r.idempotency_key = k.reservation_key LIMIT 1
    ) r
   WHERE k.reservation_key IS NOT NULL;
  SELECT coalesce(array_agg(d.i), ARRAY[]::bigint[]) INTO v_repeated
    FROM (
      SELECT k.i, count(*) OVER (PARTITION BY k.account_id, k.reservation_key) AS times
        FROM unnest(p_accounts, p_keys) WITH ORDINALITY AS k(account_id, reservation_key, i)
       WHERE k.reservation_key IS NOT NULL
    ) d
   WHERE d.times > 1;
  FOR v_group IN
    SELECT k.account_id, array_agg(k.i ORDER BY k.i) AS positions
      FROM unnest(p_accounts) WITH ORDINALITY AS k(account_id, i)
     GROUP BY k.account_id ORDER BY k.account_id
  LOOP
    v_account := v_group.account_id;
    v_slice := v_group.positions;

    -- Lock the account's counters of the batch, in (feature, period) order.
    v_features := ARRAY[]::text[];
    v_periods := ARRAY[]::timestamptz[];
    v_used := ARRAY[]::bigint[];
    v_counter_changed := ARRAY[]::boolean[];
    v_keyed := false;
    v_featured := false;
    FOREACH v_i IN ARRAY v_slice LOOP
      v_keyed := v_keyed OR p_keys[v_i] IS NOT NULL;
      v_featured := v_featured OR p_features[v_i] IS NOT NULL;
    END LOOP;
    IF v_featured THEN
      FOR v_counter IN
        SELECT p_features[o.i] AS feature, p_periods[o.i] AS period_start, bool_or(p_tracks[o.i] IS NOT NULL) AS tracks
          FROM unnest(v_slice) AS o(i)
         WHERE p_features[o.i] IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1, 2
      LOOP
        v_found := NULL;
        SELECT c.used INTO v_found FROM usage_counters c
         WHERE c.account_id = v_account AND c.feature = v_counter.feature AND c.period_start = v_counter.period_start FOR UPDATE;
        IF NOT FOUND AND v_counter.tracks THEN
          INSERT INTO usage_counters (account_id, feature, period_start, used, updated_at)
            VALUES (v_account, v_counter.feature, v_counter.period_start, 0, p_now)
            ON CONFLICT (account_id, feature, period_start) DO NOTHING;
          SELECT c.used INTO v_found FROM usage_counters c
           WHERE c.account_id = v_account AND c.feature = v_counter.feature AND c.period_start = v_counter.period_start FOR UPDATE;
        END IF;
        v_features := v_features || v_counter.feature;
        v_periods := v_periods || v_counter.period_start;
        v_used := v_used || coalesce(v_found, 0);
        v_counter_changed := v_counter_changed || false;
      END LOOP;
    END IF;

    -- Lock the account's usable grants in id order; keep them in spending order (allocation.ts).
    v_grant_ids := ARRAY[]::text[];
    v_remaining := ARRAY[]::bigint[];
    IF v_keyed THEN
      SELECT coalesce(array_agg(l.id ORDER BY l.expires_at ASC NULLS LAST, l.created_at ASC, l.id COLLATE "C" ASC), ARRAY[]::text[]),
             coalesce(array_agg(l.remaining ORDER BY l.expires_at ASC NULLS LAST, l.created_at ASC, l.id COLLATE "C" ASC), ARRAY[]::bigint[])
        INTO v_grant_ids, v_remaining
        FROM (
          SELECT c.id, c.remaining, c.expires_at, c.created_at FROM credit_grants c
           WHERE c.account_id = v_account AND c.remaining > 0 AND (c.expires_at IS NULL OR c.expires_at > p_now)
           ORDER BY c.id FOR NO KEY UPDATE
        ) l;
    END IF;
    v_grants := coalesce(cardinality(v_grant_ids), 0);
    v_grant_changed := array_fill(false, ARRAY[v_grants]);
    v_first := 1;
    v_available := 0;
    FOR v_index IN 1 .. v_grants LOOP
      v_available := v_available + v_remaining[v_index];
    END LOOP;
    v_claimed := ARRAY[]::text[];

    -- Decide each item in batch order, in memory.
    FOREACH v_i IN ARRAY v_slice LOOP
      v_positions := v_positions || v_i;
      v_answer_accounts := v_answer_accounts || v_account;
      -- A key that reserved before (also earlier in this batch) answers its reservation.
      IF p_keys[v_i] IS NOT NULL AND (v_i = ANY (v_existing) OR (v_i = ANY (v_repeated) AND p_keys[v_i] = ANY (v_claimed))) THEN
        v_outcomes := v_outcomes || 'replayed'::text;
        v_applied := v_applied || NULL::boolean;
        v_used_after := v_used_after || NULL::bigint;
        v_answer_keys := v_answer_keys || p_keys[v_i];
        CONTINUE;
      END IF;

      v_now_used := NULL;
      IF p_features[v_i] IS NOT NULL THEN
        v_c := NULL;
        FOR v_index IN 1 .. cardinality(v_features) LOOP
          IF v_features[v_index] = p_features[v_i] AND v_periods[v_index] = p_periods[v_i] THEN
            v_c := v_index;
            EXIT;
          END IF;
        END LOOP;
        v_now_used := v_used[v_c];
        -- The entitlement, exactly as entitlement_count decides it.
        IF p_limits[v_i] IS NOT NULL AND
           ((p_tracks[v_i] IS NOT NULL AND v_now_used + p_tracks[v_i] > p_limits[v_i]) OR (p_tracks[v_i] IS NULL AND v_now_used >= p_limits[v_i])) THEN
          v_outcomes := v_outcomes || 'limit'::text;
          v_applied := v_applied || false;
          v_used_after := v_used_after || v_now_used;
          v_answer_keys := v_answer_keys || NULL::text;
          CONTINUE;
        END IF;
      END IF;

      IF p_keys[v_i] IS NOT NULL THEN
        -- The credits, from the grants as the items before this one left them.
        IF v_available < p_amounts[v_i] THEN
          v_outcomes := v_outcomes || 'insufficient'::text;
          v_applied := v_applied || CASE WHEN p_features[v_i] IS NULL THEN NULL ELSE false END;
          v_used_after := v_used_after || v_now_used;
          v_answer_keys := v_answer_keys || NULL::text;
          CONTINUE;
        END IF;
        v_left := p_amounts[v_i];
        v_index := v_first;
        WHILE v_left > 0 LOOP
          v_take := least(v_remaining[v_index], v_left);
          IF v_take > 0 THEN
            v_remaining[v_index] := v_remaining[v_index] - v_take;
            v_grant_changed[v_index] := true;
            v_alloc_positions := v_alloc_positions || v_i;
            v_alloc_grants := v_alloc_grants || v_grant_ids[v_index];
            v_alloc_amounts := v_alloc_amounts || v_take;
            v_left := v_left - v_take;
          END IF;
          IF v_remaining[v_index] = 0 THEN
            v_first := v_index + 1;
          END IF;
          v_index := v_index + 1;
        END LOOP;
        v_available := v_available - p_amounts[v_i];
        v_new := v_new || v_i;
        IF v_i = ANY (v_repeated) THEN
          v_claimed := v_claimed || p_keys[v_i];
        END IF;
      END IF;

      IF p_features[v_i] IS NOT NULL AND p_tracks[v_i] IS NOT NULL THEN
        v_now_used := v_now_used + p_tracks[v_i];
        v_used[v_c] := v_now_used;
        v_counter_changed[v_c] := true;
      END IF;
      v_outcomes := v_outcomes || 'allowed'::text;
      v_applied := v_applied || CASE WHEN p_features[v_i] IS NULL THEN NULL ELSE p_tracks[v_i] IS NOT NULL END;
      v_used_after := v_used_after || v_now_used;
      v_answer_keys := v_answer_keys || p_keys[v_i];
    END LOOP;

    FOR v_index IN 1 .. v_grants LOOP
      IF v_grant_changed[v_index] THEN
        v_write_grants := v_write_grants || v_grant_ids[v_index];
        v_write_remaining := v_write_remaining || v_remaining[v_index];
      END IF;
    END LOOP;
    FOR v_index IN 1 .. cardinality(v_features) LOOP
      IF v_counter_changed[v_index] THEN
        v_write_accounts := v_write_accounts || v_account;
        v_write_features := v_write_features || v_features[v_index];
        v_write_periods := v_write_periods || v_periods[v_index];
        v_write_used := v_write_used || v_used[v_index];
      END IF;
    END LOOP;
  END LOOP;

  -- The writes of every account at once: the rows decided above, each with its own account.
  IF cardinality(v_new) > 0 THEN
    -- Claim the keys. One taken meanwhile by a concurrent transaction (which we waited for)
    -- fails the batch: its items are then run one by one.
    INSERT INTO credit_reservations (id, account_id, job_id, job_type, amount, status, idempotency_key, request_hash, created_at, expires_at)
      SELECT p_ids[n.i], p_accounts[n.i], p_job_ids[n.i], p_job_types[n.i], p_amounts[n.i], 'held', p_keys[n.i], p_hashes[n.i], p_now, p_expires_at
        FROM unnest(v_new) AS n(i)
      ON CONFLICT (account_id, idempotency_key) DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted <> cardinality(v_new) THEN
      RAISE EXCEPTION 'an idempotency key of the batch was claimed concurrently' USING ERRCODE = 'BW409';
    END IF;
    INSERT INTO credit_reservation_allocations (reservation_id, grant_id, account_id, amount)
      SELECT p_ids[a.i], a.grant_id, p_accounts[a.i], a.amount FROM unnest(v_alloc_positions, v_alloc_grants, v_alloc_amounts) AS a(i, grant_id, amount);
    INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
      SELECT p_accounts[a.i], 'hold', -a.amount, a.grant_id, p_ids[a.i], p_now FROM unnest(v_alloc_positions, v_alloc_grants, v_alloc_amounts) AS a(i, grant_id, amount);
    UPDATE credit_grants AS c SET remaining = w.remaining
      FROM unnest(v_write_grants, v_write_remaining) AS w(grant_id, remaining)
     WHERE c.id = w.grant_id;
  END IF;
  IF cardinality(v_write_accounts) > 0 THEN
    UPDATE usage_counters AS c SET used = w.used, updated_at = p_now
      FROM unnest(v_write_accounts, v_write_features, v_write_periods, v_write_used) AS w(account_id, feature, period_start, used)
     WHERE c.account_id = w.account_id AND c.feature = w.feature AND c.period_start = w.period_start;
  END IF;

  RETURN QUERY
    SELECT o.i, o.outcome, o.applied, o.used, r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at
      FROM unnest(v_positions, v_outcomes, v_applied, v_used_after, v_answer_accounts, v_answer_keys) AS o(i, outcome, applied, used, account_id, reservation_key)
      LEFT JOIN LATERAL (
        -- A new reservation answers from the batch itself; a replayed key reads the first one.
        SELECT p_ids[o.i] AS id, p_job_ids[o.i] AS job_id, p_job_types[o.i] AS job_type, p_amounts[o.i] AS amount, 'held'::text AS status,
               p_hashes[o.i] AS request_hash, p_expires_at AS expires_at
         WHERE o.outcome = 'allowed' AND o.reservation_key IS NOT NULL
        UNION ALL
        SELECT r.id, r.job_id, r.job_type, r.amount, r.status, r.request_hash, r.expires_at FROM credit_reservations r
         WHERE o.outcome = 'replayed' AND r.account_id = o.account_id AND r.idempotency_key = o.reservation_key
        LIMIT 1
      ) r ON true;
  PERFORM set_config('app.system', 'off', true);
END
$$;
GRANT EXECUTE ON FUNCTION gate_pass_many(
  text[], text[], timestamptz[], bigint[], bigint[], timestamptz, text[], text[], text[], bigint[], text[], text[], timestamptz
) TO bulwark_app;

-- Reserves (CRD-2, CRD-3, CRD-8): gates without a feature. Same signature and outcomes as
-- migration 0012's version ('held', 'replayed', 'insufficient').
CREATE OR REPLACE FUNCTION credit_reserve_many(
  p_accounts text[], p_ids text[], p_job_ids text[], p_job_types text[], p_amounts bigint[],
  p_keys text[], p_hashes text[], p_now timestamptz, p_expires_at timestamptz
) RETURNS TABLE (position_in_batch bigint, outcome text, id text, job_id text, job_type text, amount bigint, status text, request_hash text, expires_at timestamptz)
  LANGUAGE sql AS $$
  SELECT g.position_in_batch, CASE g.outcome WHEN 'allowed' THEN 'held' ELSE g.outcome END,
         g.id, g.job_id, g.job_type, g.amount, g.status, g.request_hash, g.expires_at
    FROM gate_pass_many(
      p_accounts, array_fill(NULL::text, ARRAY[cardinality(p_accounts)]), array_fill(NULL::timestamptz, ARRAY[cardinality(p_accounts)]),
      array_fill(NULL::bigint, ARRAY[cardinality(p_accounts)]), array_fill(NULL::bigint, ARRAY[cardinality(p_accounts)]), p_now,
      p_ids, p_job_ids, p_job_types, p_amounts, p_keys, p_hashes, p_expires_at
    ) AS g
$$;

-- Confirms and releases (CRD-2): for each account, its reservations in the batch are locked
-- in id order; the first item (in batch order) naming a held reservation settles it, and
-- every other item answers from the state it leaves: 'unchanged' (already in the item's
-- target state), 'conflict' (in the other final state), 'not_found' (unknown, or another
-- account's). Then the grants of the released ones are locked in id order and credited, the
-- ledger rows written (per allocation, in reservation and grant order) and the statuses set.
-- Reservations are looked up by id alone and their account compared afterwards (IS NOT
-- DISTINCT FROM, which no index serves), so that the planner always takes the primary key.
CREATE OR REPLACE FUNCTION credit_settle_many(p_accounts text[], p_ids text[], p_targets text[], p_now timestamptz)
  RETURNS TABLE (position_in_batch bigint, outcome text, id text, job_id text, job_type text, amount bigint, status text, expires_at timestamptz)
  LANGUAGE plpgsql SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
  v_group record;
  v_account text;
  v_slice bigint[];
  v_i bigint;
  v_locked_ids text[];
  v_locked_status text[];
  v_at int;
  v_released text[];
  v_settle_ids text[] := ARRAY[]::text[];
  v_settle_targets text[] := ARRAY[]::text[];
BEGIN
  IF EXISTS (SELECT 1 FROM unnest(p_targets) AS t(target) WHERE t.target NOT IN ('confirmed', 'released')) THEN
    RAISE EXCEPTION 'credit_settle_many: bad target';
  END IF;
  -- Every statement below names its account explicitly; they run in the system context.
  PERFORM set_config('app.system', 'on', true);
  FOR v_group IN
    SELECT k.account_id, array_agg(k.i ORDER BY k.i) AS positions
      FROM unnest(p_accounts) WITH ORDINALITY AS k(account_id, i)
     GROUP BY k.account_id ORDER BY k.account_id
  LOOP
    v_account := v_group.account_id;
    v_slice := v_group.positions;
    -- Lock the account's reservations of the batch in id order, reading the versions locked.
    SELECT coalesce(array_agg(l.id), ARRAY[]::text[]), coalesce(array_agg(l.status), ARRAY[]::text[])
      INTO v_locked_ids, v_locked_status
      FROM (
        SELECT r.id, r.status FROM credit_reservations r
         WHERE r.id = ANY (ARRAY(SELECT p_ids[o.i] FROM unnest(v_slice) AS o(i))) AND r.account_id IS NOT DISTINCT FROM v_account
         ORDER BY r.id FOR NO KEY UPDATE
      ) l;
    -- The first item (in batch order) naming a held reservation settles it.
    v_released := ARRAY[]::text[];
    FOREACH v_i IN ARRAY v_slice LOOP
      v_at := array_position(v_locked_ids, p_ids[v_i]);
      CONTINUE WHEN v_at IS NULL OR v_locked_status[v_at] <> 'held';
      v_locked_status[v_at] := p_targets[v_i];
      v_settle_ids := v_settle_ids || p_ids[v_i];
      v_settle_targets := v_settle_targets || p_targets[v_i];
      IF p_targets[v_i] = 'released' THEN
        v_released := v_released || p_ids[v_i];
      END IF;
    END LOOP;
    -- The grants of the released ones, locked now: after the account's reservations, in id order.
    IF cardinality(v_released) > 0 THEN
      PERFORM 1 FROM credit_grants c
        WHERE c.id = ANY (ARRAY(SELECT a.grant_id FROM credit_reservation_allocations a WHERE a.reservation_id = ANY (v_released)))
        ORDER BY c.id FOR NO KEY UPDATE;
    END IF;
  END LOOP;

  -- The answers and the writes of every account at once (the rows locked and decided
  -- above, each checked against its own account).
  RETURN QUERY
    SELECT k.i,
           CASE WHEN r.id IS NULL THEN 'not_found'
                WHEN r.status = 'held' AND k.nth = 1 THEN 'settled'
                WHEN (CASE WHEN r.status = 'held' THEN k.first_target ELSE r.status END) = k.target THEN 'unchanged'
                ELSE 'conflict' END,
           r.id, r.job_id, r.job_type, r.amount, CASE WHEN r.status = 'held' THEN k.first_target ELSE r.status END, r.expires_at
      FROM (
        SELECT q.account_id, q.reservation_id, q.target, q.i,
               row_number() OVER w AS nth, first_value(q.target) OVER w AS first_target
          FROM unnest(p_accounts, p_ids, p_targets) WITH ORDINALITY AS q(account_id, reservation_id, target, i)
        WINDOW w AS (PARTITION BY q.account_id, q.reservation_id ORDER BY q.i)
      ) k
      LEFT JOIN LATERAL (
        SELECT r.id, r.job_id, r.job_type, r.amount, r.status, r.expires_at FROM credit_reservations r
         WHERE r.id = k.reservation_id AND r.account_id IS NOT DISTINCT FROM k.account_id LIMIT 1
      ) r ON true;

  IF cardinality(v_settle_ids) > 0 THEN
    IF 'released' = ANY (v_settle_targets) THEN
      UPDATE credit_grants AS c SET remaining = c.remaining + g.amount
        FROM (
          SELECT a.grant_id, sum(a.amount) AS amount FROM credit_reservation_allocations a
           WHERE a.reservation_id = ANY (ARRAY(SELECT s.reservation_id FROM unnest(v_settle_ids, v_settle_targets) AS s(reservation_id, target) WHERE s.target = 'released'))
           GROUP BY a.grant_id
        ) g
       WHERE c.id = g.grant_id;
    END IF;
    INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
      SELECT a.account_id,
             CASE WHEN s.target = 'confirmed' THEN 'spend' ELSE 'release' END,
             CASE WHEN s.target = 'confirmed' THEN -a.amount ELSE a.amount END,
             a.grant_id, s.reservation_id, p_now
        FROM unnest(v_settle_ids, v_settle_targets) AS s(reservation_id, target)
        CROSS JOIN LATERAL (
          SELECT a.grant_id, a.account_id, a.amount FROM credit_reservation_allocations a WHERE a.reservation_id = s.reservation_id OFFSET 0
        ) a
       ORDER BY a.account_id, s.reservation_id, a.grant_id;
    UPDATE credit_reservations AS r SET status = v_settle_targets[array_position(v_settle_ids, r.id)], settled_at = p_now
     WHERE r.id = ANY (v_settle_ids);
  END IF;
  PERFORM set_config('app.system', 'off', true);
END
$$;
