-- Platform tables: scheduled job runs (one row per job per time slot, so a job runs once
-- per slot across every instance).
CREATE TABLE scheduled_job_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_name text NOT NULL,
  slot bigint NOT NULL,
  instance_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  started_at timestamptz NOT NULL,
  lease_expires_at timestamptz NOT NULL,
  finished_at timestamptz,
  error_message text,
  CONSTRAINT scheduled_job_runs_once_per_slot UNIQUE (job_name, slot)
);

CREATE INDEX scheduled_job_runs_running ON scheduled_job_runs (job_name) WHERE status = 'running';
CREATE INDEX scheduled_job_runs_started ON scheduled_job_runs (started_at);
