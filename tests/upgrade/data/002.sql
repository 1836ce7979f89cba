-- Representative data of schema version 2 (migrations/002_dead_letter_replay.sql), loaded as
-- the owner on top of 001.sql's rows into a database at version 2: a dead letter an operator
-- replayed once its cause was fixed, beside version 1's pending one.

INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value, reason, attempts,
                          created_at, replayed_at) VALUES
  ('planner', 'exammentor.messaging.consumer.planner', 0, 5, '\x6b6579', '\x7b2264617973223a307d',
   'PlanningError: no study days', 3, '2026-01-08 12:00:00+00', '2026-01-08 12:30:00+00');
