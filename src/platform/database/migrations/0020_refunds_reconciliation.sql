-- Refunds by the operator (PAY-7) and reconciliation with Stripe (PAY-8).

-- Credits taken back from a refunded credit pack payment's grant, cumulatively over every
-- refund of the payment: what should have been taken back so far is
-- floor(credits_granted x amount_refunded_cents / amount_cents) (all of them for a full
-- refund); of that, credits_reversed came out of the grant and credits_reversal_shortfall
-- could not (they had been spent already). A charge.refunded delivered again, or a later
-- partial refund, only takes back the difference (event-handlers/refund-reversal.ts).
ALTER TABLE payments
  ADD COLUMN credits_reversed bigint NOT NULL DEFAULT 0 CHECK (credits_reversed >= 0),
  ADD COLUMN credits_reversal_shortfall bigint NOT NULL DEFAULT 0 CHECK (credits_reversal_shortfall >= 0),
  ADD CONSTRAINT payments_reversal_bound CHECK (credits_reversed + credits_reversal_shortfall <= credits_granted);

-- One row per refund an operator asked for. `id` is the operation id of the Stripe call
-- (Idempotency-Key bulwark-refund.create-<id>), so a retry after a lost answer never makes
-- a second Stripe refund. `idempotency_key` is the request's Idempotency-Key header, or
-- without one a natural key derived from the request (payment, amount, reason).
CREATE TABLE refunds (
  id text PRIMARY KEY CHECK (id ~ '^rfd_'),
  account_id text NOT NULL REFERENCES accounts (id),
  payment_id text NOT NULL REFERENCES payments (id),
  idempotency_key text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  -- SHA-256 of the request body (paymentId, amount, reason): the same key with another body is 422.
  request_hash text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  -- What was asked: NULL for a full refund. amount_cents is what the refund is for (resolved when asked).
  requested_amount_cents bigint CHECK (requested_amount_cents IS NULL OR requested_amount_cents > 0),
  amount_cents bigint NOT NULL CHECK (amount_cents > 0),
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
  stripe_reason text CHECK (stripe_reason IS NULL OR stripe_reason IN ('duplicate', 'fraudulent', 'requested_by_customer')),
  -- requested: recorded, not yet accepted by Stripe (a retry sends it again, same key);
  -- then Stripe's refund status; rejected: Stripe refused it (nothing was refunded).
  status text NOT NULL CHECK (status IN ('requested', 'pending', 'requires_action', 'succeeded', 'failed', 'canceled', 'rejected')),
  stripe_refund_id text UNIQUE,
  error_code text CHECK (error_code IS NULL OR error_code ~ '^[A-Za-z0-9_]{1,64}$'),
  actor_type text NOT NULL,
  actor_id text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id);

-- Reconciliation runs and every discrepancy each found (operator data: system context only).
CREATE TABLE reconciliation_runs (
  id text PRIMARY KEY CHECK (id ~ '^rcn_'),
  trigger text NOT NULL CHECK (trigger IN ('schedule', 'admin', 'cli')),
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  customers_checked integer NOT NULL DEFAULT 0 CHECK (customers_checked >= 0),
  discrepancies integer NOT NULL DEFAULT 0 CHECK (discrepancies >= 0),
  repaired integer NOT NULL DEFAULT 0 CHECK (repaired >= 0),
  repair_failed integer NOT NULL DEFAULT 0 CHECK (repair_failed >= 0),
  error_code text CHECK (error_code IS NULL OR error_code ~ '^[A-Za-z0-9_]{1,64}$'),
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  CONSTRAINT reconciliation_runs_finished CHECK ((status = 'running') = (finished_at IS NULL))
);
-- At most one run at a time, across instances (a second one is refused with 409).
CREATE UNIQUE INDEX reconciliation_runs_one_running ON reconciliation_runs ((true)) WHERE status = 'running';
CREATE INDEX reconciliation_runs_recent ON reconciliation_runs (started_at DESC, id DESC);

CREATE TABLE reconciliation_discrepancies (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id text NOT NULL REFERENCES reconciliation_runs (id),
  kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
  object_type text NOT NULL CHECK (object_type IN ('subscription', 'payment', 'checkout_session', 'charge')),
  -- The Stripe object's id (sub_, ch_, cs_).
  object_id text NOT NULL CHECK (length(object_id) BETWEEN 1 AND 255),
  account_id text REFERENCES accounts (id),
  -- Ids, statuses, amounts in the smallest unit: no personal data.
  local_value jsonb,
  stripe_value jsonb,
  -- repaired, failed (the repair threw; retried on the next run) or reported (not repaired automatically).
  resolution text NOT NULL CHECK (resolution IN ('repaired', 'failed', 'reported')),
  error_code text CHECK (error_code IS NULL OR error_code ~ '^[A-Za-z0-9_]{1,64}$'),
  created_at timestamptz NOT NULL
);
CREATE INDEX reconciliation_discrepancies_run ON reconciliation_discrepancies (run_id, id);

GRANT SELECT, INSERT, UPDATE ON refunds, reconciliation_runs TO bulwark_app;
GRANT SELECT, INSERT ON reconciliation_discrepancies TO bulwark_app;
GRANT USAGE ON SEQUENCE reconciliation_discrepancies_id_seq TO bulwark_app;

ALTER TABLE refunds ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_discrepancies ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON refunds
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY system_only ON reconciliation_runs USING (app_is_system()) WITH CHECK (app_is_system());
CREATE POLICY system_only ON reconciliation_discrepancies USING (app_is_system()) WITH CHECK (app_is_system());
