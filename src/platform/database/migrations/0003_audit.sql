-- Audit trail (AUD-1, AUD-2): append-only and hash-chained.
--
-- HASH DESIGN (the application computes it: src/modules/audit/audit.hash.ts; the
-- verifier recomputes it the same way):
--
--   personal_digest = SHA-256( personal_salt || "\n" || canonical({ip, personal}) )
--   hash            = SHA-256( prev_hash || "\n" || canonical({v:1, id, at, event, actorType,
--                              actorId, subjectType, subjectId, accountId, metadata,
--                              personalDigest}) )
--
-- canonical() is JSON with object keys sorted and no whitespace; `at` is ISO 8601 UTC
-- with milliseconds; personal_salt is 32 random bytes (hex) drawn per entry; prev_hash of
-- the first entry is 64 zeros. Personal data (ip, and the `personal` object: email,
-- name, ...) is therefore covered by the chain only through personal_digest.
--
-- GDPR ERASURE (GDPR-2) without breaking the chain: audit_erase_personal() replaces ip
-- and every value of `personal` with a keyed pseudonym ('pse_' + 32 hex of
-- HMAC-SHA256), discards personal_salt and sets erased_at. personal_digest and hash stay
-- as they were, so the chain still verifies: for an erased row the verifier takes the
-- stored personal_digest as given (without the salt it can no longer be recomputed, and
-- without the salt it no longer reveals anything: it is a hiding commitment, not a hash
-- of guessable data such as an IPv4 address). Every non-personal field of an erased row
-- stays covered exactly as before. The immutability trigger lets an UPDATE through only
-- when it is exactly such an erasure, made by that function; anything else is refused.
--
-- CHAIN HEAD: audit_chain_head holds the last entry's seq, id and hash. Inserters lock it
-- (audit_chain_lock(), SELECT ... FOR UPDATE) before computing their hash, so concurrent
-- transactions append one after another; the insert trigger refuses an entry whose
-- prev_hash is not the head's hash and moves the head. Under REPEATABLE READ or
-- SERIALIZABLE a transaction whose snapshot predates the head's last move fails with
-- 40001 instead of forking the chain. The head also lets the verifier notice entries
-- missing from the end of the log.

CREATE TABLE audit_log (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  at timestamptz NOT NULL,
  event text NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  actor_type text NOT NULL,
  actor_id text,
  subject_type text,
  subject_id text,
  -- The account the entry concerns: row-level security and GDPR erasure key on it.
  -- No foreign key: entries outlive what they describe.
  account_id text,
  ip text,
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  personal jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(personal) = 'object'),
  personal_salt text,
  personal_digest text NOT NULL,
  erased_at timestamptz,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  CONSTRAINT audit_log_salt_until_erased CHECK ((personal_salt IS NULL) = (erased_at IS NOT NULL))
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);

CREATE TABLE audit_chain_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_seq bigint NOT NULL,
  last_id text,
  hash text NOT NULL
);
INSERT INTO audit_chain_head (last_seq, last_id, hash) VALUES (0, NULL, repeat('0', 64));

-- Locks the chain head until the end of the transaction and returns it.
CREATE FUNCTION audit_chain_lock() RETURNS TABLE (last_seq bigint, hash text)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT h.last_seq, h.hash FROM public.audit_chain_head AS h FOR UPDATE
$$;

-- BEFORE INSERT: the new entry must continue the chain; the head moves to it.
CREATE FUNCTION audit_log_chain() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  head record;
BEGIN
  SELECT h.last_seq, h.hash INTO head FROM public.audit_chain_head AS h FOR UPDATE;
  IF NEW.prev_hash IS DISTINCT FROM head.hash OR NEW.seq <= head.last_seq THEN
    RAISE EXCEPTION 'audit_log: entry % does not continue the chain (lock it with audit_chain_lock() first)', NEW.id;
  END IF;
  UPDATE public.audit_chain_head SET last_seq = NEW.seq, last_id = NEW.id, hash = NEW.hash;
  RETURN NEW;
END
$$;

-- BEFORE UPDATE OR DELETE: refused, except a GDPR erasure made by audit_erase_personal().
CREATE FUNCTION audit_log_append_only() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND current_setting('bulwark.audit_erasure', true) = 'on'
     AND OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL AND NEW.personal_salt IS NULL
     AND (NEW.seq, NEW.id, NEW.at, NEW.event, NEW.actor_type, NEW.actor_id, NEW.subject_type, NEW.subject_id,
          NEW.account_id, NEW.metadata, NEW.personal_digest, NEW.prev_hash, NEW.hash)
         IS NOT DISTINCT FROM
         (OLD.seq, OLD.id, OLD.at, OLD.event, OLD.actor_type, OLD.actor_id, OLD.subject_type, OLD.subject_id,
          OLD.account_id, OLD.metadata, OLD.personal_digest, OLD.prev_hash, OLD.hash)
     AND (NEW.ip IS NULL OR (OLD.ip IS NOT NULL AND NEW.ip ~ '^pse_[0-9a-f]{32}$'))
     AND (SELECT coalesce(array_agg(k ORDER BY k), '{}') FROM jsonb_object_keys(NEW.personal) AS k)
         = (SELECT coalesce(array_agg(k ORDER BY k), '{}') FROM jsonb_object_keys(OLD.personal) AS k)
     AND NOT EXISTS (
       SELECT 1 FROM jsonb_each(NEW.personal) AS e
       WHERE e.value <> 'null'::jsonb
         AND NOT (jsonb_typeof(e.value) = 'string' AND (e.value #>> '{}') ~ '^pse_[0-9a-f]{32}$'))
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;

CREATE FUNCTION audit_log_no_truncate() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME;
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate();

-- The head only moves forward (the chain trigger moves it); it is never inserted,
-- deleted or truncated after this migration.
CREATE FUNCTION audit_chain_head_forward_only() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.last_seq > OLD.last_seq THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_chain_head only moves forward: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_chain_head_forward_only BEFORE INSERT OR UPDATE OR DELETE ON audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate();

-- GDPR-2: replaces the personal data of the given entries with pseudonyms computed by the
-- application. p_batch is a JSON array of {id, ip, personal}. Only entries the calling
-- transaction may see (system context, or its own account) and not yet erased are
-- changed; returns how many were.
CREATE FUNCTION audit_erase_personal(p_batch jsonb, p_at timestamptz) RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  erased integer;
BEGIN
  PERFORM set_config('bulwark.audit_erasure', 'on', true);
  UPDATE public.audit_log AS l
     SET ip = e.ip, personal = coalesce(e.personal, '{}'::jsonb), personal_salt = NULL, erased_at = p_at
    FROM jsonb_to_recordset(p_batch) AS e(id text, ip text, personal jsonb)
   WHERE l.id = e.id
     AND l.erased_at IS NULL
     AND (public.app_is_system() OR l.account_id = public.app_account_id());
  GET DIAGNOSTICS erased = ROW_COUNT;
  PERFORM set_config('bulwark.audit_erasure', 'off', true);
  RETURN erased;
END
$$;

-- The application role may read (subject to RLS) and append, nothing else.
GRANT SELECT, INSERT ON audit_log TO bulwark_app;
GRANT USAGE ON SEQUENCE audit_log_seq_seq TO bulwark_app;
GRANT SELECT ON audit_chain_head TO bulwark_app;
REVOKE ALL ON FUNCTION audit_chain_lock() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_erase_personal(jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_chain_lock() TO bulwark_app;
GRANT EXECUTE ON FUNCTION audit_erase_personal(jsonb, timestamptz) TO bulwark_app;

-- Reading is isolated per account (operators read as a system context). Recording works
-- from every context: anonymous and system contexts may record entries about any account
-- (a failed login against an account, a webhook), an account context records entries
-- about its own account or about no account, never about another account.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_read ON audit_log FOR SELECT
  USING (app_is_system() OR account_id = app_account_id());
CREATE POLICY audit_record ON audit_log FOR INSERT
  WITH CHECK (app_is_system() OR app_account_id() IS NULL OR account_id IS NULL OR account_id = app_account_id());
