-- Maintenance mode: one row the operator turns on and off (`exammentor maintenance on|off`).
-- While it is on, the gateway answers every write with 503 and Retry-After and keeps serving
-- reads; workers finish what they hold. The gateway reads the row (a second's cache), so
-- turning it off resumes without a restart. Not user data: no row-level security; the
-- services' role may read it, only the owner (the migration role) writes it.

CREATE TABLE maintenance (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  enabled boolean NOT NULL DEFAULT false,
  reason text,
  retry_after_s integer NOT NULL DEFAULT 60 CHECK (retry_after_s BETWEEN 1 AND 86400),
  changed_at timestamptz NOT NULL DEFAULT now(),
  changed_by text
);

INSERT INTO maintenance (singleton, enabled) VALUES (true, false);

REVOKE ALL ON maintenance FROM exammentor_app;
GRANT SELECT ON maintenance TO exammentor_app;
