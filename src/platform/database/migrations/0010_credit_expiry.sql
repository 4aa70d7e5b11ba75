-- The credit sweeper (CRD-6) looks for grants that have expired with credits left.
CREATE INDEX credit_grants_expiring ON credit_grants (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
