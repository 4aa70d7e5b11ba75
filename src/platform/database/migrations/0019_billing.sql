-- PLACEHOLDER on the `refunds` branch only. Migration 0019 belongs to the `lifecycle`
-- branch (its own 0019_billing.sql); this empty file exists so that the refunds branch's
-- 0020 can run on its own (migrations must be numbered 1..n without gaps). When merging,
-- take the lifecycle branch's version of this file and drop this one.
SELECT 1;
