-- Usage reporting (USE-1..6). One row per reported event; the idempotency key is scoped
-- to the account, so a replayed event is stored once (USE-1) whichever instance gets it.
-- Row-level security as in 0002 (ACC-3): an account context sees only its own rows.

CREATE TABLE usage_reports (
  id text PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (id),
  idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  job_id text CHECK (length(job_id) <= 128),
  job_type text NOT NULL CHECK (length(job_type) BETWEEN 1 AND 64),
  quantity bigint NOT NULL DEFAULT 1 CHECK (quantity > 0),
  credits_used bigint NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
  status text NOT NULL DEFAULT 'recorded',
  description text CHECK (length(description) <= 500),
  -- Internal only (USE-3): never part of an API answer. Keys are allowlisted (USE-4).
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL,
  CONSTRAINT usage_reports_idempotency UNIQUE (account_id, idempotency_key)
);
-- Newest-first keyset pages per account: ORDER BY created_at DESC, id DESC.
CREATE INDEX usage_reports_account_created ON usage_reports (account_id, created_at DESC, id DESC);
-- Retention (USE-5) deletes across accounts by age.
CREATE INDEX usage_reports_created ON usage_reports (created_at);

-- Events accepted per account and UTC day: the anomaly rule (USE-6) reads a handful of
-- these rows instead of counting reports, and anomaly_recorded_at makes its audit entry
-- once per account and day (the row is locked by the batch that updates it).
CREATE TABLE usage_daily_counts (
  account_id text NOT NULL REFERENCES accounts (id),
  day date NOT NULL,
  events bigint NOT NULL DEFAULT 0 CHECK (events >= 0),
  anomaly_recorded_at timestamptz,
  PRIMARY KEY (account_id, day)
);
CREATE INDEX usage_daily_counts_day ON usage_daily_counts (day);

GRANT SELECT, INSERT, DELETE ON usage_reports TO bulwark_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON usage_daily_counts TO bulwark_app;

ALTER TABLE usage_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_daily_counts ENABLE ROW LEVEL SECURITY;

CREATE POLICY account_isolation ON usage_reports
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
CREATE POLICY account_isolation ON usage_daily_counts
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
