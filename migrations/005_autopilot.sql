-- The autopilot (issue 10): a durable autonomous study session. A run's state, its step
-- log and its timers live here, so any replica can carry a run on after a crash.
--
-- autopilot_runs:   one row per run of a session (runs numbered from 1); the state is the
--                   run without its step log, the view what the status route shows, and
--                   the timer columns say when the driver must act without any input.
-- autopilot_steps:  the run's log, append-only (the services' role may not change a row).
-- autopilot_leases: who drives each active run: owner, fencing token and expiry. It holds
--                   ids and times only, so every replica's driver sees every row; a run
--                   leaves it when it ends.

CREATE TABLE autopilot_runs (
  session_id        uuid NOT NULL REFERENCES study_sessions (id) ON DELETE CASCADE,
  run_number        integer NOT NULL CHECK (run_number >= 1),
  user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  status            text NOT NULL,
  phase             text NOT NULL,
  state             jsonb NOT NULL,
  view              jsonb NOT NULL,
  version           bigint NOT NULL DEFAULT 1,
  steps_count       integer NOT NULL DEFAULT 0 CHECK (steps_count >= 0),
  elapsed_before_ms bigint NOT NULL DEFAULT 0 CHECK (elapsed_before_ms >= 0),
  running_since     timestamptz,
  answer_deadline   timestamptz,
  session_deadline  timestamptz,
  started_at        timestamptz NOT NULL,
  completed_at      timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, run_number)
);
CREATE INDEX autopilot_runs_user_idx ON autopilot_runs (user_id);

CREATE TABLE autopilot_steps (
  session_id  uuid NOT NULL,
  run_number  integer NOT NULL,
  number      integer NOT NULL CHECK (number >= 1),
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  action      text NOT NULL,
  step        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, run_number, number),
  FOREIGN KEY (session_id, run_number) REFERENCES autopilot_runs ON DELETE CASCADE
);
CREATE INDEX autopilot_steps_user_idx ON autopilot_steps (user_id);

CREATE TABLE autopilot_leases (
  session_id  uuid PRIMARY KEY,
  run_number  integer NOT NULL,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  owner       text,
  token       bigint NOT NULL DEFAULT 0,
  expires_at  timestamptz,
  wake_at     timestamptz,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (session_id, run_number) REFERENCES autopilot_runs ON DELETE CASCADE
);
CREATE INDEX autopilot_leases_expiry_idx ON autopilot_leases (expires_at);

ALTER TABLE autopilot_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE autopilot_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY autopilot_runs_owner ON autopilot_runs
  USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id());
ALTER TABLE autopilot_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE autopilot_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY autopilot_steps_owner ON autopilot_steps
  USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id());

GRANT SELECT, INSERT, UPDATE, DELETE ON autopilot_runs, autopilot_leases TO exammentor_app;
-- The log is append-only for the services.
GRANT SELECT, INSERT ON autopilot_steps TO exammentor_app;
