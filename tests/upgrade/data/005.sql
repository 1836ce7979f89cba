-- Representative data of schema version 5 (migrations/005_autopilot.sql): asha's finished
-- first run and running second run of one session (steps of both), ben's run paused during
-- an answer wait, and the leases of the two active runs (one held, one free to take over).

INSERT INTO autopilot_runs (session_id, run_number, user_id, status, phase, state, view,
                            version, steps_count, elapsed_before_ms, running_since,
                            answer_deadline, session_deadline, started_at, completed_at,
                            updated_at) VALUES
  ('00000000-0000-4000-8001-000000000001', 1, '00000000-0000-4000-8000-000000000001',
   'completed', 'finished', '{"run_number": 1, "status": "completed"}',
   '{"status": "completed", "current_phase": "finished"}', 9, 2, 1800000, NULL, NULL, NULL,
   '2026-01-08 09:00:00+00', '2026-01-08 09:30:00+00', '2026-01-08 09:30:00+00'),
  ('00000000-0000-4000-8001-000000000001', 2, '00000000-0000-4000-8000-000000000001',
   'running', 'awaiting_answer', '{"run_number": 2, "status": "running"}',
   '{"status": "running", "current_phase": "awaiting_answer"}', 4, 2, 0,
   '2026-01-09 09:00:00+00', '2026-01-09 09:05:00+00', '2026-01-09 09:30:00+00',
   '2026-01-09 09:00:00+00', NULL, '2026-01-09 09:04:00+00'),
  ('00000000-0000-4000-8001-000000000002', 1, '00000000-0000-4000-8000-000000000002',
   'paused', 'awaiting_answer', '{"run_number": 1, "status": "paused"}',
   '{"status": "paused", "current_phase": "awaiting_answer"}', 6, 1, 240000, NULL, NULL,
   NULL, '2026-01-09 10:00:00+00', NULL, '2026-01-09 10:04:00+00');

INSERT INTO autopilot_steps (session_id, run_number, number, user_id, action, step,
                             created_at) VALUES
  ('00000000-0000-4000-8001-000000000001', 1, 1, '00000000-0000-4000-8000-000000000001',
   'start', '{"number": 1, "action": "start", "reasoning": "run 1"}', '2026-01-08 09:00:00+00'),
  ('00000000-0000-4000-8001-000000000001', 1, 2, '00000000-0000-4000-8000-000000000001',
   'complete', '{"number": 2, "action": "complete", "reasoning": "time is up"}',
   '2026-01-08 09:30:00+00'),
  ('00000000-0000-4000-8001-000000000001', 2, 1, '00000000-0000-4000-8000-000000000001',
   'start', '{"number": 1, "action": "start", "reasoning": "run 2"}', '2026-01-09 09:00:00+00'),
  ('00000000-0000-4000-8001-000000000001', 2, 2, '00000000-0000-4000-8000-000000000001',
   'quiz', '{"number": 2, "action": "quiz", "reasoning": "3 questions"}',
   '2026-01-09 09:04:00+00'),
  ('00000000-0000-4000-8001-000000000002', 1, 1, '00000000-0000-4000-8000-000000000002',
   'pause', '{"number": 1, "action": "pause", "reasoning": "paused"}',
   '2026-01-09 10:04:00+00');

INSERT INTO autopilot_leases (session_id, run_number, user_id, owner, token, expires_at,
                              wake_at, updated_at) VALUES
  ('00000000-0000-4000-8001-000000000001', 2, '00000000-0000-4000-8000-000000000001',
   'autopilot-host-1', 3, '2026-01-09 09:04:10+00', '2026-01-09 09:05:00+00',
   '2026-01-09 09:04:00+00'),
  ('00000000-0000-4000-8001-000000000002', 1, '00000000-0000-4000-8000-000000000002',
   NULL, 1, NULL, NULL, '2026-01-09 10:04:00+00');
