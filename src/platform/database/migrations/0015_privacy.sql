-- Personal data rights (GDPR-1, GDPR-2). See docs/ARCHITECTURE.md "Personal data".
--
-- ACCOUNT DELETION is two steps, so that no live subscription is ever left charging a
-- person whose data we erased:
--   1. At once, in the request's transaction: the account and its users become 'deleted'
--      (every instance refuses them: the account feed of 0005 and the API key feed),
--      every session, password reset and API key is revoked, and a 'pending' row is
--      written here.
--   2. Then (in the request, else by the privacy.account_deletions job, retried with
--      back-off): subscriptions are canceled and the Stripe customer deleted, and only
--      once Stripe has confirmed that are the personal data erased locally and the row
--      marked 'completed', in one transaction.
CREATE TABLE account_deletions (
  account_id text PRIMARY KEY REFERENCES accounts (id),
  -- The user who asked (an id, not personal data beyond ids).
  requested_by text NOT NULL,
  requested_at timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'completed')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL,
  -- Why the last attempt failed: an error type and code, never a message or personal data.
  last_error text CHECK (length(last_error) <= 200),
  completed_at timestamptz,
  CONSTRAINT account_deletions_completed CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX account_deletions_due ON account_deletions (next_attempt_at) WHERE status = 'pending';

GRANT SELECT, INSERT, UPDATE ON account_deletions TO bulwark_app;
ALTER TABLE account_deletions ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON account_deletions
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());

-- Erasure keeps usage reports (what was used and what it cost) but clears the caller's
-- free text and metadata, which may name a person.
GRANT UPDATE (description, metadata) ON usage_reports TO bulwark_app;
-- An erased external user's (issuer, subject) mapping is removed.
GRANT DELETE ON external_identities TO bulwark_app;

-- Audit entries that name no account but carry a typed email (a failed login for an email
-- that had no account yet, a login lockout) are found by that email for export and erasure.
CREATE INDEX audit_log_unattributed_email ON audit_log ((personal ->> 'email'))
  WHERE account_id IS NULL AND erased_at IS NULL;
