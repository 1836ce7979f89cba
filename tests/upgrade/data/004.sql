-- Representative data of schema version 4 (migrations/004_quiz.sql), loaded as the owner on
-- top of the earlier files' rows: asha's stored question, her answers (one right, one
-- wrong), her concept and topic mastery, a redeemed misconception with its re-check due,
-- and a fitted parameter set.

INSERT INTO quiz_questions (user_id, id, quiz_id, topic, concept, question, item_rating,
                            item_answers, created_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'q_0123456789abcdef',
   '00000000-0000-4000-8004-000000000001', 'Kinematics', 'Newton''s second law',
   '{"id": "q_0123456789abcdef", "text": "What is the SI unit of force?", "question_type": "multiple_choice", "options": ["newton", "joule", "watt", "pascal"], "correct_option_index": 0, "explanation": "Force is mass times acceleration.", "difficulty": "easy", "concept_tested": "Newton''s second law", "accepted_answers": [], "visual_reference": null}',
   -0.4, 2, '2026-01-08 09:00:00+00');

INSERT INTO quiz_answers (id, user_id, question_id, request_id, topic, concept, answer,
                          outcome, answered_at) VALUES
  ('00000000-0000-4000-8004-000000000011', '00000000-0000-4000-8000-000000000001',
   'q_0123456789abcdef', '00000000-0000-4000-8004-000000000021', 'Kinematics',
   'Newton''s second law', '1', 'wrong', '2026-01-08 09:01:00+00'),
  ('00000000-0000-4000-8004-000000000012', '00000000-0000-4000-8000-000000000001',
   'q_0123456789abcdef', '00000000-0000-4000-8004-000000000022', 'Kinematics',
   'Newton''s second law', '0', 'correct', '2026-01-09 09:01:00+00');

INSERT INTO learner_concepts (user_id, concept_key, concept, topic, p_mastery, status,
                              attempts, correct, evidence, skill_rating, skill_answers,
                              review_card, next_review, last_attempted, updated_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'newton s second law', 'Newton''s second law',
   'Kinematics', 0.62, 'learning', 2, 1,
   '["00000000-0000-4000-8004-000000000011", "00000000-0000-4000-8004-000000000012"]',
   0.1, 2, '{"card_id": 1, "state": 2, "step": null, "stability": 3.1, "difficulty": 5.2, "due": "2026-01-12T09:01:00Z", "last_review": "2026-01-09T09:01:00Z"}',
   '2026-01-12 09:01:00+00', '2026-01-09 09:01:00+00', '2026-01-09 09:01:00+00');

INSERT INTO learner_topics (user_id, topic_key, topic, score, status, attempts, evidence,
                            last_attempted, next_review, updated_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'kinematics', 'Kinematics', 62.0, 'learning', 2,
   '["00000000-0000-4000-8004-000000000011", "00000000-0000-4000-8004-000000000012"]',
   '2026-01-09 09:01:00+00', '2026-01-12 09:01:00+00', '2026-01-09 09:01:00+00');

INSERT INTO misconception_records (user_id, id, concept, topic, state, question_id,
                                   redemption_question_id, record, diagnosis, opened_at,
                                   recheck_due, updated_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'm_0123456789abcdef', 'Newton''s second law',
   'Kinematics', 'redeemed', 'q_0123456789abcdef', 'q_0123456789abcdef',
   '{"id": "m_0123456789abcdef", "state": "redeemed"}',
   '{"inferred_confusion": "Mixes up force with energy."}',
   '2026-01-08 09:02:00+00', '2026-01-12 09:01:00+00', '2026-01-09 09:01:00+00');

INSERT INTO learner_params (concept_key, prior, learn, slip, guess, forget, answers,
                            sequences, log_likelihood, fitted_at) VALUES
  ('*', 0.3, 0.15, 0.1, 0.2, 0.03, 500, 40, -290.5, '2026-01-10 00:00:00+00');
