-- The plan catalogue (TIER-1) and the public price list (CRD-4, PAY-2). These tables are
-- global, not account-scoped: every account reads the same catalogue, so there is no
-- row-level security on them. The application role may read, add and change rows but
-- never delete them (a plan that accounts may carry must not disappear; TIER-2 would
-- quietly turn them into FREE).
--
-- Plans are seeded from src/modules/plans/catalogue.v1.json at start-up (seedCatalogue):
-- only plans that do not exist yet are inserted, so operator edits survive restarts.

CREATE TABLE plans (
  id text PRIMARY KEY CHECK (id ~ '^[A-Z][A-Z0-9_]{1,31}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  price_cents bigint NOT NULL CHECK (price_cents >= 0),
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  interval text NOT NULL CHECK (interval IN ('month', 'year')),
  -- RL-5: requests per minute for account keys and services on machine routes; NULL = unlimited.
  requests_per_minute integer CHECK (requests_per_minute IS NULL OR requests_per_minute > 0),
  -- feature name -> {kind, limit | enabled, period?}; validated by the application on write and on read.
  features jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
  -- Display order on the public price list.
  position integer NOT NULL DEFAULT 1000,
  -- The row's revision: 1 when created, +1 on every change.
  version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
  -- The catalogue file version that created the row; NULL for plans an operator created.
  catalogue_version integer,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- What one unit of a job costs in credits (CRD-4): read by the credits module and shown
-- on GET /api/pricing with updated_at (TIER-5).
CREATE TABLE credit_job_prices (
  job_type text PRIMARY KEY CHECK (job_type ~ '^[a-z][a-z0-9_]{0,63}$'),
  credits_per_unit bigint NOT NULL CHECK (credits_per_unit > 0),
  unit text NOT NULL CHECK (unit ~ '^[a-z][a-z0-9_]{0,31}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO credit_job_prices (job_type, credits_per_unit, unit) VALUES
  ('story', 5, 'story'),
  ('book', 2, 'page');

-- One-time credit packs sold through checkout (PAY-2). Shipped empty: the billing module
-- (or an operator) defines them.
CREATE TABLE credit_packs (
  id text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,63}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  credits bigint NOT NULL CHECK (credits > 0),
  price_cents bigint NOT NULL CHECK (price_cents > 0),
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  active boolean NOT NULL DEFAULT true,
  position integer NOT NULL DEFAULT 1000,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON plans, credit_job_prices, credit_packs TO bulwark_app;

-- Every change to the catalogue or the price list is announced on the bulwark_plans
-- channel, on commit, so each instance drops its cached catalogue (the same feed as
-- migration 0005 for accounts). A trigger, so that no code path (nor an operator's SQL)
-- can change a price and forget to announce it. The payload names what changed; the
-- caches drop everything whatever it says.
CREATE FUNCTION announce_catalogue_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  row_key text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    row_key := '*';
  ELSIF TG_OP = 'DELETE' THEN
    row_key := to_jsonb(OLD) ->> TG_ARGV[0];
  ELSE
    row_key := to_jsonb(NEW) ->> TG_ARGV[0];
  END IF;
  PERFORM pg_notify('bulwark_plans', TG_TABLE_NAME || ':' || coalesce(row_key, '*'));
  RETURN NULL;
END
$$;

CREATE TRIGGER plans_announce_change
  AFTER INSERT OR UPDATE OR DELETE ON plans
  FOR EACH ROW EXECUTE FUNCTION announce_catalogue_change('id');
CREATE TRIGGER plans_announce_truncate
  AFTER TRUNCATE ON plans
  FOR EACH STATEMENT EXECUTE FUNCTION announce_catalogue_change('id');

CREATE TRIGGER credit_job_prices_announce_change
  AFTER INSERT OR UPDATE OR DELETE ON credit_job_prices
  FOR EACH ROW EXECUTE FUNCTION announce_catalogue_change('job_type');
CREATE TRIGGER credit_job_prices_announce_truncate
  AFTER TRUNCATE ON credit_job_prices
  FOR EACH STATEMENT EXECUTE FUNCTION announce_catalogue_change('job_type');

CREATE TRIGGER credit_packs_announce_change
  AFTER INSERT OR UPDATE OR DELETE ON credit_packs
  FOR EACH ROW EXECUTE FUNCTION announce_catalogue_change('id');
CREATE TRIGGER credit_packs_announce_truncate
  AFTER TRUNCATE ON credit_packs
  FOR EACH STATEMENT EXECUTE FUNCTION announce_catalogue_change('id');
