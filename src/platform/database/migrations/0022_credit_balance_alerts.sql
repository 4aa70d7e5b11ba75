-- credits.low (OUT-1): one row per account whose balance was checked against
-- CREDITS_LOW_THRESHOLD. `low` turns true when the balance falls below the threshold (the
-- notification is queued in that same transaction, so each crossing notifies once, even
-- with several instances checking at once) and false again once the balance is back at or
-- above it, which re-arms the alert.
CREATE TABLE credit_balance_alerts (
  account_id text PRIMARY KEY REFERENCES accounts (id),
  low boolean NOT NULL,
  -- The balance seen by the check that last changed `low`.
  balance bigint NOT NULL,
  changed_at timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON credit_balance_alerts TO bulwark_app;
ALTER TABLE credit_balance_alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON credit_balance_alerts
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());
