-- Notifications (MAIL-1, OUT-1): emails to account holders and outgoing webhooks to the
-- operator's application, queued in the transaction of the change that causes them (a
-- rolled-back change notifies nobody, a committed one is never forgotten) and delivered
-- afterwards by a worker with retries, so sending never blocks or breaks a request.
--
-- notifications: one row per thing that happened (subscription.canceled, payment.failed...).
-- `data` holds ids, amounts, dates and links for the templates and the webhook body; no
-- name, no email address.
CREATE TABLE notifications (
  id text PRIMARY KEY CHECK (id ~ '^ntf_'),
  account_id text REFERENCES accounts (id),
  type text NOT NULL CHECK (type ~ '^[a-z_]+(\.[a-z_]+)+$' AND length(type) <= 100),
  data jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL
);
CREATE INDEX notifications_account ON notifications (account_id) WHERE account_id IS NOT NULL;

-- The operator's webhook endpoints (OUT-1). `event_types` empty means every type. The
-- signing secret is needed to sign, so it is kept (see docs/ARCHITECTURE.md).
CREATE TABLE webhook_endpoints (
  id text PRIMARY KEY CHECK (id ~ '^whe_'),
  url text NOT NULL CHECK (length(url) <= 2048),
  description text CHECK (length(description) <= 500),
  event_types text[] NOT NULL DEFAULT '{}',
  secret text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- One row per (notification, target): an email to a user, or a webhook to an endpoint.
-- status: pending (due at next_attempt_at), delivered, dead (gave up after the retry window).
-- recipient: the address of an email whose user may be erased before delivery (the account
-- deletion email); cleared once delivered or dead. Other emails resolve the user at delivery.
CREATE TABLE notification_deliveries (
  id text PRIMARY KEY CHECK (id ~ '^ndl_'),
  notification_id text NOT NULL REFERENCES notifications (id),
  account_id text REFERENCES accounts (id),
  channel text NOT NULL CHECK (channel IN ('email', 'webhook')),
  template text CHECK (template IS NULL OR template ~ '^[a-z_]+$'),
  user_id text REFERENCES users (id),
  recipient text,
  endpoint_id text REFERENCES webhook_endpoints (id),
  status text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL,
  -- Why the last attempt failed: an error code or an HTTP status, never a body.
  last_error text CHECK (length(last_error) <= 200),
  last_response_status integer,
  last_attempt_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CONSTRAINT notification_deliveries_target CHECK (
    (channel = 'email' AND template IS NOT NULL AND endpoint_id IS NULL)
    OR (channel = 'webhook' AND endpoint_id IS NOT NULL AND template IS NULL AND user_id IS NULL AND recipient IS NULL))
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_notification ON notification_deliveries (notification_id);
-- The delivery log of one endpoint, newest first (GET /api/admin/webhook-endpoints/:id/deliveries).
CREATE INDEX notification_deliveries_endpoint ON notification_deliveries (endpoint_id, created_at DESC, id DESC) WHERE endpoint_id IS NOT NULL;

GRANT SELECT, INSERT ON notifications TO bulwark_app;
-- Only to drop a one-time link (the password reset's) from the data once its email is sent.
GRANT UPDATE (data) ON notifications TO bulwark_app;
GRANT SELECT, INSERT, UPDATE ON notification_deliveries TO bulwark_app;
GRANT SELECT, INSERT, UPDATE ON webhook_endpoints TO bulwark_app;

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON notifications
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON notification_deliveries
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
