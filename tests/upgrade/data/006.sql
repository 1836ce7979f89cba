-- Representative data of schema version 6 (migrations/006_force_rls.sql): an event written in
-- asha's transaction and a dead letter of ben's command, both carrying their user; a system
-- row of each pipeline table (no user) is in 001.sql.

INSERT INTO outbox (event_id, topic, key, envelope, headers, created_at, published_at, user_id)
VALUES
  ('00000000-0000-4000-8009-000000000006', 'exammentor.events.quiz',
   '\x30303030303030302d303030302d343030302d383030302d303030303030303030303031',
   '{"name": "quiz.graded", "version": 1, "payload": {"correct": true}}', '{}',
   '2026-01-10 08:00:00+00', '2026-01-10 08:00:01+00', '00000000-0000-4000-8000-000000000001');

INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value, reason, attempts,
                          created_at, user_id) VALUES
  ('tutor', 'exammentor.messaging.consumer.tutor', 1, 9, '\x6b6579', '\x7b7d',
   'UndeclaredErrorCode: tutor.explain does not declare the error code ''x''', 3,
   '2026-01-10 09:00:00+00', '00000000-0000-4000-8000-000000000002');
