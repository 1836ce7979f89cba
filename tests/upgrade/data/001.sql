-- Representative data of schema version 1 (migrations/001_schema_v1.sql), loaded as the
-- owner into a database at version 1. Every table has rows and every column a non-null
-- value somewhere, so an upgrade that mishandles a column shows. Fixed ids and times: the
-- rows are the same on every run. Three users, so row-level security has someone to hide.

INSERT INTO users (id, name, email, password_hash, created_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'asha', 'asha@example.org',
   '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g',
   '2026-01-05 08:00:00+00'),
  ('00000000-0000-4000-8000-000000000002', 'ben', NULL,
   '$argon2id$v=19$m=65536,t=3,p=4$b3RoZXJzYWx0b3RoZXI$b3RoZXJoYXNob3RoZXJoYXNo',
   '2026-01-06 09:30:00+00'),
  ('00000000-0000-4000-8000-000000000003', 'chiara', 'chiara@example.org',
   '$argon2id$v=19$m=65536,t=3,p=4$dGhpcmRzYWx0dGhpcmQ$dGhpcmRoYXNodGhpcmRoYXNo',
   '2026-01-07 10:15:00+00');

INSERT INTO study_sessions (id, user_id, exam_type, current_state, metadata, current_context,
                            agent_history, created_at, updated_at) VALUES
  ('00000000-0000-4000-8001-000000000001', '00000000-0000-4000-8000-000000000001', 'jee',
   'PLANNING', '{"exam_date": "2026-04-02", "hours_per_day": 4}',
   '{"subject": "physics", "days": 30}',
   '[{"agent": "planner", "at": "2026-01-05T08:05:00Z", "summary": "plan drafted"}]',
   '2026-01-05 08:01:00+00', '2026-01-05 08:06:00+00'),
  ('00000000-0000-4000-8001-000000000002', '00000000-0000-4000-8000-000000000002', 'none',
   'INTAKE', '{}', '{}', '[]', '2026-01-06 09:31:00+00', '2026-01-06 09:31:00+00'),
  ('00000000-0000-4000-8001-000000000003', '00000000-0000-4000-8000-000000000003', 'neet',
   'TUTORING', '{"exam_date": "2026-05-03"}', '{"topic": "Cell Biology"}',
   '[{"agent": "tutor", "at": "2026-01-07T10:20:00Z", "summary": "lesson on cells"}]',
   '2026-01-07 10:16:00+00', '2026-01-07 10:21:00+00');

INSERT INTO topics (id, session_id, user_id, name, status, mastery_score) VALUES
  ('00000000-0000-4000-8002-000000000001', '00000000-0000-4000-8001-000000000001',
   '00000000-0000-4000-8000-000000000001', 'Kinematics', 'in_progress', 40),
  ('00000000-0000-4000-8002-000000000002', '00000000-0000-4000-8001-000000000001',
   '00000000-0000-4000-8000-000000000001', 'Laws of Motion', 'pending', 0),
  ('00000000-0000-4000-8002-000000000003', '00000000-0000-4000-8001-000000000003',
   '00000000-0000-4000-8000-000000000003', 'Cell Biology', 'mastered', 100);

INSERT INTO misconceptions (id, user_id, topic_id, description, detected_at) VALUES
  ('00000000-0000-4000-8003-000000000001', '00000000-0000-4000-8000-000000000001',
   '00000000-0000-4000-8002-000000000001',
   'Treats average speed as the mean of the two speeds', '2026-01-05 09:00:00+00'),
  ('00000000-0000-4000-8003-000000000002', '00000000-0000-4000-8000-000000000003', NULL,
   'Confuses mitosis with meiosis', '2026-01-07 11:00:00+00');

INSERT INTO plan_cache (id, cache_key, plan, created_at, expires_at) VALUES
  ('00000000-0000-4000-8004-000000000001',
   'v3:5f2b9c1e4d7a8b6c3e2f1a0d9c8b7a6e5d4c3b2a19f8e7d6c5b4a3928170615f',
   '{"exam_name": "JEE Main", "total_days": 2, "overview": "Two days of mechanics.",
     "schedule": [
       {"day": 1, "theme": "Kinematics", "estimated_hours": 4.0, "date": "2026-01-06",
        "day_type": "study",
        "topics": [{"name": "Kinematics", "difficulty": "medium", "rationale": "foundation",
                    "hours": 4.0, "kind": "learn", "part": 1, "parts": 1}]},
       {"day": 2, "theme": "Revision", "estimated_hours": 1.0, "date": "2026-01-07",
        "day_type": "revision",
        "topics": [{"name": "Kinematics", "difficulty": "medium", "rationale": "final revision",
                    "hours": 1.0, "kind": "revision"}]}],
     "critical_topics": ["Kinematics"], "dropped_topics": []}',
   '2026-01-05 08:04:00+00', '2026-01-12 08:04:00+00');

INSERT INTO tutor_chats (user_id, topic_id, messages, explanation, last_updated) VALUES
  ('00000000-0000-4000-8000-000000000001', 'kinematics',
   '[{"role": "user", "content": "Why is velocity a vector?"},
     {"role": "assistant", "content": "Because it has a direction as well as a size."}]',
   '{"topic": "Kinematics", "summary": "Motion in one and two dimensions",
     "sections": [{"title": "Displacement", "body": "Change of position."}]}',
   '2026-01-05 09:10:00+00'),
  ('00000000-0000-4000-8000-000000000003', 'cell-biology', '[]', NULL,
   '2026-01-07 10:30:00+00');

INSERT INTO quizzes (id, user_id, topic_id, questions, created_at) VALUES
  ('00000000-0000-4000-8005-000000000001', '00000000-0000-4000-8000-000000000001',
   'kinematics',
   '[{"question": "A car covers 60 km in 1.5 h. Its average speed?",
      "options": ["30 km/h", "40 km/h", "60 km/h", "90 km/h"], "correct": 1,
      "explanation": "60 / 1.5 = 40"}]',
   '2026-01-05 10:00:00+00'),
  ('00000000-0000-4000-8005-000000000002', '00000000-0000-4000-8000-000000000002',
   'algebra',
   '[{"question": "Solve 2x + 3 = 7", "options": ["1", "2", "3", "4"], "correct": 1,
      "explanation": "2x = 4"}]',
   '2026-01-06 10:00:00+00');

INSERT INTO requests (id, user_id, kind, status, payload, result, error, created_at,
                      updated_at, completed_at) VALUES
  ('00000000-0000-4000-8006-000000000001', '00000000-0000-4000-8000-000000000001',
   'plan.generate', 'done', '{"exam": "JEE Main", "days": 2, "hours_per_day": 4}',
   '{"plan_id": "00000000-0000-4000-8007-000000000001"}', NULL,
   '2026-01-05 08:02:00+00', '2026-01-05 08:04:00+00', '2026-01-05 08:04:00+00'),
  ('00000000-0000-4000-8006-000000000002', '00000000-0000-4000-8000-000000000002',
   'quiz.generate', 'failed', '{"topic": "algebra"}', NULL,
   '{"code": "model_unavailable", "message": "the model did not answer"}',
   '2026-01-06 09:40:00+00', '2026-01-06 09:41:00+00', '2026-01-06 09:41:00+00'),
  ('00000000-0000-4000-8006-000000000003', '00000000-0000-4000-8000-000000000003',
   'tutor.explain', 'running', '{"topic": "Cell Biology"}', NULL, NULL,
   '2026-01-07 10:18:00+00', '2026-01-07 10:18:30+00', NULL);

INSERT INTO request_events (request_id, seq, user_id, body, created_at) VALUES
  ('00000000-0000-4000-8006-000000000001', 1, '00000000-0000-4000-8000-000000000001',
   '{"type": "progress", "stage": "routing"}', '2026-01-05 08:02:30+00'),
  ('00000000-0000-4000-8006-000000000001', 2, '00000000-0000-4000-8000-000000000001',
   '{"type": "final", "plan_id": "00000000-0000-4000-8007-000000000001"}',
   '2026-01-05 08:04:00+00'),
  ('00000000-0000-4000-8006-000000000003', 1, '00000000-0000-4000-8000-000000000003',
   '{"type": "progress", "stage": "retrieving"}', '2026-01-07 10:18:20+00');

INSERT INTO study_plans (id, user_id, session_id, request_id, plan, verification, history,
                         from_cache, created_at) VALUES
  ('00000000-0000-4000-8007-000000000001', '00000000-0000-4000-8000-000000000001',
   '00000000-0000-4000-8001-000000000001', '00000000-0000-4000-8006-000000000001',
   '{"exam_name": "JEE Main", "total_days": 2, "overview": "Two days of mechanics.",
     "schedule": [
       {"day": 1, "theme": "Kinematics", "estimated_hours": 4.0, "date": "2026-01-06",
        "day_type": "study",
        "topics": [{"name": "Kinematics", "difficulty": "medium", "rationale": "foundation",
                    "hours": 4.0, "kind": "learn", "part": 1, "parts": 1}]},
       {"day": 2, "theme": "Revision", "estimated_hours": 1.0, "date": "2026-01-07",
        "day_type": "revision",
        "topics": [{"name": "Kinematics", "difficulty": "medium", "rationale": "final revision",
                    "hours": 1.0, "kind": "revision"}]}],
     "critical_topics": ["Kinematics"], "dropped_topics": []}',
   '{"is_valid": true, "coverage_percent": 100.0, "revision_present": true,
     "required_topics_count": 1, "scheduled_topics_count": 1, "hours_cap": 4.0}',
   '[{"version": 1, "reason": "first draft"}]', false, '2026-01-05 08:04:00+00'),
  ('00000000-0000-4000-8007-000000000002', '00000000-0000-4000-8000-000000000003', NULL,
   '00000000-0000-4000-8006-000000000004',
   '{"exam_name": "NEET", "total_days": 0, "overview": "Nothing scheduled yet.",
     "schedule": [], "critical_topics": [], "dropped_topics": [
       {"name": "Ecology", "weight": 0.5, "hours": 6.0, "reason": "did not fit"}]}',
   NULL, NULL, true, '2026-01-07 10:17:00+00');

-- Pipeline tables: no row-level security, written for every user.
INSERT INTO inbox (consumer, command_id, user_id, applied_at) VALUES
  ('planner', '00000000-0000-4000-8008-000000000001', '00000000-0000-4000-8000-000000000001',
   '2026-01-05 08:04:00+00'),
  ('quiz', '00000000-0000-4000-8008-000000000002', NULL, '2026-01-06 09:41:00+00');

INSERT INTO outbox (event_id, topic, key, envelope, headers, created_at, published_at) VALUES
  ('00000000-0000-4000-8009-000000000001', 'exammentor.events.plan',
   '\x30303030303030302d303030302d343030302d383030302d303030303030303030303031',
   '{"name": "plan.created", "version": 1, "payload": {"plan_id": "00000000-0000-4000-8007-000000000001"}}',
   '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
   '2026-01-05 08:04:00+00', '2026-01-05 08:04:01+00'),
  ('00000000-0000-4000-8009-000000000002', 'exammentor.events.quiz', '\x00',
   '{"name": "quiz.failed", "version": 1, "payload": {}}', '{}',
   '2026-01-06 09:41:00+00', NULL);

INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value, reason, attempts,
                          created_at) VALUES
  ('quiz', 'exammentor.messaging.consumer.quiz', 2, 17, '\x6b6579', '\x7b7d',
   'ValidationError: questions: field required', 3, '2026-01-06 09:41:00+00');

INSERT INTO llm_usage (service, purpose, model, prompt_tokens, completion_tokens, latency_ms,
                       outcome, user_id, request_id, created_at) VALUES
  ('planner', 'plan.route', 'smollm2-135m-instruct', 812, 64, 420.5, 'ok',
   '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8006-000000000001',
   '2026-01-05 08:02:10+00'),
  ('quiz', 'quiz.questions', 'smollm2-135m-instruct', 950, 0, 120000.0, 'timeout',
   NULL, NULL, '2026-01-06 09:40:30+00');
