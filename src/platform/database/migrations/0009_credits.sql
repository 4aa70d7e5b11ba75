-- Prepaid credits (CRD-1..9): grants, reservations (holds), the grants each hold took
-- from, and an append-only ledger of every movement. Account-scoped, under row-level
-- security like 0002.
--
-- UNITS (CRD-5): every amount is a bigint count of whole credits. Credits are the
-- smallest unit; nothing is ever a float. At the HTTP edge they are JSON integers
-- (exact up to 2^53; the service caps one operation at 1,000,000 credits).
--
-- THE LEDGER IDENTITY, per account (checked by verifyCreditLedger / npm run credits:verify):
--
--   sum(credit_grants.amount)
--     = sum(credit_grants.remaining)                 -- spendable, plus expired not yet written off
--     + sum(amount of reservations status 'held')
--     + sum(amount of reservations status 'confirmed')
--     + written off (-sum(ledger amount) of kinds 'expiry' and 'refund_reversal')
--
-- LEDGER SIGN CONVENTION: credit_ledger.amount is the signed change of the account's
-- spendable credits (the sum of credit_grants.remaining), with one exception, 'spend':
--   grant            +N  a grant was created (N = its amount)
--   hold             -N  N credits of one grant moved from remaining into a reservation
--   release          +N  N held credits returned to the grant they came from
--   spend            -N  N held credits of a confirmed reservation left the account for good
--                        (changes what is held, not remaining)
--   expiry           -N  the remainder of an expired grant was written off
--   refund_reversal  -N  credits taken back because the payment that bought them was refunded
-- hold, release and spend rows are written per allocation (one per grant the
-- reservation took from) and carry both grant_id and reservation_id.

CREATE TABLE credit_grants (
  id text PRIMARY KEY CHECK (id ~ '^grant_'),
  account_id text NOT NULL REFERENCES accounts (id),
  source text NOT NULL CHECK (source IN ('purchase', 'signup_bonus', 'admin', 'promotion', 'refund_reversal')),
  amount bigint NOT NULL CHECK (amount > 0),
  -- CRD-1: a balance can never go negative, nor a grant give more than it holds.
  remaining bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  expires_at timestamptz,
  -- What the grant came from (a payment id, a promotion code); never card data (PAY-1).
  reference text CHECK (reference IS NULL OR length(reference) BETWEEN 1 AND 256),
  created_at timestamptz NOT NULL
);
-- CRD-7: at most one signup bonus per account.
CREATE UNIQUE INDEX credit_grants_one_signup_bonus ON credit_grants (account_id) WHERE source = 'signup_bonus';
-- The grants a reservation can take from.
CREATE INDEX credit_grants_usable ON credit_grants (account_id, id) WHERE remaining > 0;

CREATE TABLE credit_reservations (
  id text PRIMARY KEY CHECK (id ~ '^res_'),
  account_id text NOT NULL REFERENCES accounts (id),
  job_id text NOT NULL CHECK (length(job_id) BETWEEN 1 AND 128),
  job_type text NOT NULL CHECK (length(job_type) BETWEEN 1 AND 64),
  amount bigint NOT NULL CHECK (amount > 0),
  status text NOT NULL CHECK (status IN ('held', 'confirmed', 'released')),
  idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  -- SHA-256 of the reserve request (jobId, jobType, units, amount): a reused key with another body is 422.
  request_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  -- created_at + 15 minutes: the sweeper (CRD-6) releases held reservations past it.
  expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
  settled_at timestamptz,
  CONSTRAINT credit_reservations_settled CHECK ((status = 'held') = (settled_at IS NULL)),
  CONSTRAINT credit_reservations_idempotency UNIQUE (account_id, idempotency_key)
);
CREATE INDEX credit_reservations_held ON credit_reservations (expires_at) WHERE status = 'held';
CREATE INDEX credit_reservations_account_held ON credit_reservations (account_id) WHERE status = 'held';

-- Which grants a hold took from, so that a release returns the credits to the same grants.
CREATE TABLE credit_reservation_allocations (
  reservation_id text NOT NULL REFERENCES credit_reservations (id),
  grant_id text NOT NULL REFERENCES credit_grants (id),
  account_id text NOT NULL REFERENCES accounts (id),
  amount bigint NOT NULL CHECK (amount > 0),
  PRIMARY KEY (reservation_id, grant_id)
);
CREATE INDEX credit_reservation_allocations_grant ON credit_reservation_allocations (grant_id);

CREATE TABLE credit_ledger (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (id),
  kind text NOT NULL CHECK (kind IN ('grant', 'hold', 'spend', 'release', 'expiry', 'refund_reversal')),
  amount bigint NOT NULL,
  grant_id text REFERENCES credit_grants (id),
  reservation_id text REFERENCES credit_reservations (id),
  created_at timestamptz NOT NULL,
  CONSTRAINT credit_ledger_sign CHECK (
    (kind IN ('grant', 'release') AND amount > 0) OR (kind NOT IN ('grant', 'release') AND amount < 0)
  ),
  CONSTRAINT credit_ledger_reservation CHECK ((kind IN ('hold', 'spend', 'release')) = (reservation_id IS NOT NULL))
);
CREATE INDEX credit_ledger_account ON credit_ledger (account_id, id);

GRANT SELECT, INSERT, UPDATE ON credit_grants, credit_reservations TO bulwark_app;
GRANT SELECT, INSERT ON credit_reservation_allocations TO bulwark_app;
-- Append-only for the application: no UPDATE, no DELETE.
GRANT SELECT, INSERT ON credit_ledger TO bulwark_app;
GRANT USAGE ON SEQUENCE credit_ledger_id_seq TO bulwark_app;

ALTER TABLE credit_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_reservation_allocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_ledger ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON credit_grants
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON credit_reservations
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON credit_reservation_allocations
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON credit_ledger
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
