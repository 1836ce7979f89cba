-- Representative data of schema version 7 (migrations/007_request_delivery.sql): a request
-- whose command is stored beside it, sent twice by the sweeper, named by the client's
-- Idempotency-Key.

INSERT INTO requests (id, user_id, kind, status, payload, result, error, created_at,
                      updated_at, completed_at, command, topic, publish_attempts,
                      idempotency_key) VALUES
  ('00000000-0000-4000-8006-000000000007', '00000000-0000-4000-8000-000000000001',
   'system.echo', 'done', '{"text": "kept"}', '{"echo": "kept", "service": "planner"}', NULL,
   '2026-01-11 08:00:00+00', '2026-01-11 08:00:02+00', '2026-01-11 08:00:02+00',
   '{"type": "system.echo", "version": 1, "payload": {"text": "kept"}}',
   'exammentor.cmd.planner', 2, 'client-retry-7');
