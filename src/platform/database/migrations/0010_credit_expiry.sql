-- Credit grant indexes for the sweeper and for hot accounts.
--
-- The grant a busy account spends from is updated on every reserve and release. An index
-- that mentions `remaining` (as 0009's partial index credit_grants_usable did, WHERE
-- remaining > 0) makes every such update a non-HOT update: a new index entry each time,
-- so the account's look-up walked one dead entry per earlier reserve until vacuum caught
-- up (measured: 1,005 index entries for one live grant after 4,000 reserves). None of
-- the indexes below mention `remaining`, and half of each page is left free, so the
-- update stays on its page and touches no index.
DROP INDEX credit_grants_usable;
CREATE INDEX credit_grants_account ON credit_grants (account_id, id);
-- The credit sweeper (CRD-6) looks for grants that have expired.
CREATE INDEX credit_grants_expiring ON credit_grants (expires_at) WHERE expires_at IS NOT NULL;
ALTER TABLE credit_grants SET (fillfactor = 50);
