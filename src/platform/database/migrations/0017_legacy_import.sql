-- The legacy JSON import (OPS-9, CLI-1; docs/legacy-import.md): one row per legacy record
-- brought in, keyed by the record's kind and its legacy id. The primary key is what makes
-- the import happen once: a record's row is inserted in the same transaction as what the
-- record became (account and user, subscription, payment), so a second run, or two runs
-- at the same time, find it and write nothing.
CREATE TABLE legacy_import_records (
  kind text NOT NULL CHECK (kind IN ('user', 'subscription', 'payment')),
  legacy_id text NOT NULL CHECK (legacy_id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  -- What the record became: a usr_ id, a Stripe sub_ id, a pay_ id.
  target_id text NOT NULL,
  account_id text NOT NULL REFERENCES accounts (id),
  -- SHA-256 of the record's canonical form, so that a later run can say a record changed
  -- since it was imported (it is then reported, not applied). Cleared when the user's
  -- personal data are erased (GDPR-2): a digest of a person's record is theirs too.
  record_sha256 text CHECK (record_sha256 ~ '^[0-9a-f]{64}$'),
  run_id text NOT NULL CHECK (run_id ~ '^imp_'),
  imported_at timestamptz NOT NULL,
  PRIMARY KEY (kind, legacy_id),
  UNIQUE (kind, target_id)
);
CREATE INDEX legacy_import_records_account ON legacy_import_records (account_id);

GRANT SELECT, INSERT ON legacy_import_records TO bulwark_app;
GRANT UPDATE (record_sha256) ON legacy_import_records TO bulwark_app;
ALTER TABLE legacy_import_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_isolation ON legacy_import_records
  USING (app_is_system() OR account_id = app_account_id())
  WITH CHECK (app_is_system() OR account_id = app_account_id());

-- Erasing a user's email (the deletion's erasure step) also drops the digest of the legacy
-- record that user came from. Runs as the erasing transaction's role and context.
CREATE FUNCTION legacy_import_forget_user() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  UPDATE legacy_import_records SET record_sha256 = NULL
   WHERE kind = 'user' AND target_id = NEW.id AND record_sha256 IS NOT NULL;
  RETURN NEW;
END
$$;
CREATE TRIGGER users_legacy_import_forget
  AFTER UPDATE OF email ON users
  FOR EACH ROW WHEN (OLD.email IS NOT NULL AND NEW.email IS NULL)
  EXECUTE FUNCTION legacy_import_forget_user();
