-- Representative data of schema version 3 (migrations/003_tutor.sql), loaded as the owner on
-- top of 001.sql and 002.sql: asha's PDF notes (two passages on pages 1 and 3) and ben's
-- pasted text, a whole streamed answer citing page 3 and a partial one.

INSERT INTO tutor_materials (id, user_id, request_id, title, kind, page_count, chars,
                             created_at) VALUES
  ('00000000-0000-4000-8010-000000000001', '00000000-0000-4000-8000-000000000001',
   '00000000-0000-4000-8011-000000000001', 'Kinematics notes', 'pdf', 3, 96,
   '2026-01-09 10:00:00+00'),
  ('00000000-0000-4000-8010-000000000002', '00000000-0000-4000-8000-000000000002',
   '00000000-0000-4000-8011-000000000002', 'Cell biology', 'text', 1, 44,
   '2026-01-09 11:00:00+00');

INSERT INTO tutor_passages (material_id, user_id, position, page, text) VALUES
  ('00000000-0000-4000-8010-000000000001', '00000000-0000-4000-8000-000000000001', 0, 1,
   'Displacement is the change of position of a body.'),
  ('00000000-0000-4000-8010-000000000001', '00000000-0000-4000-8000-000000000001', 1, 3,
   'Projectile range is u squared sin 2 theta over g.'),
  ('00000000-0000-4000-8010-000000000002', '00000000-0000-4000-8000-000000000002', 0, 1,
   'Mitochondria make ATP by oxidative phosphorylation.');

INSERT INTO tutor_answers (id, user_id, request_id, kind, topic, topic_id, answer, citations,
                           partial, prompt_tokens, completion_tokens, latency_ms,
                           created_at) VALUES
  ('00000000-0000-4000-8012-000000000001', '00000000-0000-4000-8000-000000000001',
   '00000000-0000-4000-8011-000000000003', 'stream', 'Projectile motion', 'kinematics',
   '{"markdown": "Range is u^2 sin 2θ / g [p. 3]."}',
   '[{"page": 3, "material_id": "00000000-0000-4000-8010-000000000001"}]', false, 420, 18,
   812.5, '2026-01-09 10:05:00+00'),
  ('00000000-0000-4000-8012-000000000002', '00000000-0000-4000-8000-000000000002',
   '00000000-0000-4000-8011-000000000004', 'stream', 'Mitochondria', 'cell-biology',
   '{"markdown": "Mitochondria are"}', '[]', true, 300, 3, 150.0,
   '2026-01-09 11:05:00+00');
