-- GET /api/account carries the account's current subscription, cached per instance with
-- the account's snapshot (src/modules/accounts/account-snapshots.ts). Every change to a
-- subscription row is announced on the accounts channel (0005), on commit, so each
-- instance drops that account's cached snapshot and subscription.
CREATE FUNCTION announce_subscription_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('bulwark_accounts', OLD.account_id);
  ELSE
    PERFORM pg_notify('bulwark_accounts', NEW.account_id);
    IF TG_OP = 'UPDATE' AND OLD.account_id IS DISTINCT FROM NEW.account_id THEN
      PERFORM pg_notify('bulwark_accounts', OLD.account_id);
    END IF;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_announce_change
  AFTER INSERT OR UPDATE OR DELETE ON subscriptions
  FOR EACH ROW EXECUTE FUNCTION announce_subscription_change();
