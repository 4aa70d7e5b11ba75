-- The paid subscription lifecycle (PAY-4, PAY-5, PAY-6).
--
-- past_due_since: when the subscription was first seen past_due in this spell (Stripe's
-- time: the event's `created`); NULL while it is not past_due. The plan is kept for
-- PAST_DUE_GRACE_DAYS from then (entitledPlanOf), after that the account is on FREE even
-- while Stripe still retries.
-- activated_at: when it first became active or trialing (subscription.activated is
-- emitted once, by the transaction that sets it).
-- change_requests: a counter of our own requests to change it at Stripe (cancel, resume,
-- plan change); each request's operation id (the Idempotency-Key) is
-- `<subscription id>.<kind>.<n>`, durable across retries of that one Stripe call.
ALTER TABLE subscriptions ADD COLUMN past_due_since timestamptz;
ALTER TABLE subscriptions ADD COLUMN activated_at timestamptz;
ALTER TABLE subscriptions ADD COLUMN change_requests integer NOT NULL DEFAULT 0 CHECK (change_requests >= 0);
CREATE INDEX subscriptions_past_due ON subscriptions (past_due_since) WHERE status = 'past_due';
