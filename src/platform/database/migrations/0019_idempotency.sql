-- The Idempotency-Key header (API.md "Every mutating POST that a client may retry accepts an
-- Idempotency-Key header"): one row per (principal scope, key). The first request claims the
-- key ('running'), its answer is stored with it ('done'); a retry with the same body gets the
-- stored answer, with another body 422, while the first still runs 409. Answers of 5xx and 429
-- are not kept (the key is released so the retry runs). Kept 24 hours.
--
-- scope: 'account:<id>' for account principals, 'admin' for the operator.
-- response_body: the JSON the route answered; routes whose answers carry a secret (API key
-- secrets, webhook signing secrets, tokens) are not covered (see src/platform/http/idempotency.ts).
CREATE TABLE idempotency_requests (
  scope text NOT NULL CHECK (length(scope) <= 200),
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  method text NOT NULL,
  route text NOT NULL,
  request_hash text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  status text NOT NULL CHECK (status IN ('running', 'done')),
  response_status integer,
  response_type text,
  response_body text,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key),
  CONSTRAINT idempotency_requests_done CHECK ((status = 'done') = (response_status IS NOT NULL))
);
CREATE INDEX idempotency_requests_expiry ON idempotency_requests (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_requests TO bulwark_app;
-- Only the system context (the HTTP layer, before and after the route) touches it.
ALTER TABLE idempotency_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY system_only ON idempotency_requests USING (app_is_system()) WITH CHECK (app_is_system());
