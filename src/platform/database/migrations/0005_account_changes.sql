-- Every change to an account row (plan, status, name, deletion) is announced on the
-- bulwark_accounts channel, on commit, so each instance drops its cached snapshot of that
-- account (ACC-4: a suspension takes effect everywhere at once). A trigger, so that no
-- code path can change an account and forget to announce it.
CREATE FUNCTION announce_account_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bulwark_accounts', OLD.id);
  RETURN NULL;
END
$$;

CREATE TRIGGER accounts_announce_change
  AFTER UPDATE OR DELETE ON accounts
  FOR EACH ROW EXECUTE FUNCTION announce_account_change();
