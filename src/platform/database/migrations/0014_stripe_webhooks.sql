-- Stripe webhook intake (WH-1..9): the inbox of events, plus the local billing state the
-- event handlers keep from Stripe (subscriptions, payments), which the paid lifecycle
-- (checkout, cancel, renewals, refunds, reconciliation) builds on. Account-scoped tables
-- under row-level security like 0002 and 0009.

-- The inbox: one row per Stripe event id (WH-3). It holds ids, the type, timestamps and
-- a SHA-256 of the raw payload only: no personal data, no payload (WH-7).
--
-- status:
--   received   only inside the processing transaction that claimed the event; never committed
--   processed  the event's effect committed with this row (WH-4)
--   ignored    recorded and answered 200 without effect: unhandled type, unknown customer,
--              nothing to do (reason says which); never retried (WH-8)
--   refused    recorded and answered 200, deliberately without effect: an owner or test
--              account (OWN-1), a credit purchase whose amount or currency is wrong (WH-6)
--   failed     processing failed `attempts` times (rolled back each time); Stripe retries
--   dead       failed WEBHOOK_MAX_ATTEMPTS times: the dead-letter list; replayed by an operator
-- reason: an UPPER_SNAKE code (the outcome's reason, or the last failure's error code), never text from the payload.
CREATE TABLE stripe_events (
  id text PRIMARY KEY CHECK (id ~ '^evt_[A-Za-z0-9_]+$' AND length(id) <= 255),
  type text NOT NULL CHECK (type ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$' AND length(type) <= 100),
  -- The event's own `created` (Stripe's time, seconds), not when it reached us.
  event_created_at timestamptz NOT NULL,
  livemode boolean NOT NULL,
  -- The account owning the event's Stripe customer, when it resolved to one.
  account_id text REFERENCES accounts (id),
  payload_sha256 text NOT NULL CHECK (payload_sha256 ~ '^[0-9a-f]+$' AND length(payload_sha256) = 64),
  status text NOT NULL CHECK (status IN ('received', 'processed', 'ignored', 'refused', 'failed', 'dead')),
  reason text CHECK (reason IS NULL OR reason ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  received_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  processed_at timestamptz
);
CREATE INDEX stripe_events_dead ON stripe_events (id) WHERE status = 'dead';
CREATE INDEX stripe_events_account ON stripe_events (account_id) WHERE account_id IS NOT NULL;

-- Subscriptions as Stripe last told us (re-fetched, WH-5). `id` is Stripe's subscription id.
-- Handlers lock the subscription (an advisory lock on its id) and then re-fetch it, so
-- writes happen in the order of the fetches; the upsert's guard also refuses to revive a
-- terminal subscription or move its period backwards (see event-handlers/subscriptions.ts).
CREATE TABLE subscriptions (
  id text PRIMARY KEY CHECK (id ~ '^sub_[A-Za-z0-9_]+$'),
  account_id text NOT NULL REFERENCES accounts (id),
  stripe_customer_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')),
  -- Our plan id, from the price's product (bulwark_plan_<PLAN>); NULL when the price is not one of ours.
  plan_id text,
  stripe_price_id text,
  current_period_start timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  cancel_at timestamptz,
  canceled_at timestamptz,
  ended_at timestamptz,
  trial_end timestamptz,
  stripe_created_at timestamptz NOT NULL,
  -- The newest event applied (its `created`), and when the state was fetched from Stripe.
  last_event_id text,
  last_event_created_at timestamptz,
  synced_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX subscriptions_account ON subscriptions (account_id);

-- Payments: a credit pack bought through checkout, a subscription invoice, or a charge we
-- know nothing more about yet. One row per payment intent (when there is one). Amounts are
-- integers of the currency's smallest unit.
CREATE TABLE payments (
  id text PRIMARY KEY CHECK (id ~ '^pay_'),
  account_id text NOT NULL REFERENCES accounts (id),
  kind text NOT NULL CHECK (kind IN ('credit_pack', 'subscription_invoice', 'charge')),
  stripe_payment_intent_id text UNIQUE,
  stripe_charge_id text UNIQUE,
  stripe_checkout_session_id text UNIQUE,
  stripe_invoice_id text UNIQUE,
  stripe_subscription_id text,
  credit_pack_id text,
  amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  status text NOT NULL CHECK (status IN ('pending', 'requires_action', 'succeeded', 'failed')),
  amount_refunded_cents bigint NOT NULL DEFAULT 0 CHECK (amount_refunded_cents >= 0 AND amount_refunded_cents <= amount_cents),
  -- WH-4/WH-6: the one grant a credit pack purchase made, in the transaction of the event that made it.
  credits_granted bigint NOT NULL DEFAULT 0 CHECK (credits_granted >= 0),
  credit_grant_id text UNIQUE REFERENCES credit_grants (id),
  disputed_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CONSTRAINT payments_grant CHECK ((credit_grant_id IS NULL) = (credits_granted = 0))
);
CREATE INDEX payments_account ON payments (account_id);

GRANT SELECT, INSERT, UPDATE ON stripe_events, subscriptions, payments TO bulwark_app;

ALTER TABLE stripe_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
-- The inbox: the webhook path claims events as a system context (the account may not be
-- known yet); an account context sees only its own account's events.
CREATE POLICY account_isolation ON stripe_events
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON subscriptions
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON payments
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());

-- The first step of every delivery in one statement (no transaction of its own, so a
-- duplicate costs one round trip): the event's inbox status and the account owning its
-- Stripe customer, or for an event naming only a charge (disputes) the account of that
-- charge's payment. It looks across accounts, as a system context does, for exactly these
-- two facts, and drops the system setting again before it returns.
CREATE FUNCTION stripe_event_lookup(p_event_id text, p_customer text, p_charge text)
  RETURNS TABLE (status text, account_id text)
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.system', 'on', true);
  RETURN QUERY
    SELECT (SELECT e.status FROM stripe_events e WHERE e.id = p_event_id),
           coalesce((SELECT a.id FROM accounts a WHERE a.stripe_customer_id = p_customer),
                    (SELECT p.account_id FROM payments p WHERE p.stripe_charge_id = p_charge));
  PERFORM set_config('app.system', '', true);
END
$$;
GRANT EXECUTE ON FUNCTION stripe_event_lookup(text, text, text) TO bulwark_app;
