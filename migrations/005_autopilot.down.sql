-- Down step of 005: back to version 4. Autopilot runs, their logs and leases are lost
-- (back them up first: see docs/operations.md); nothing older refers to them.
DROP TABLE autopilot_leases;
DROP TABLE autopilot_steps;
DROP TABLE autopilot_runs;
