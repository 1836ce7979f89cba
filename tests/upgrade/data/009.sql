-- Representative data of schema version 9 (migrations/009_one_round_trip.sql): it adds
-- functions, no table or column; a request stored through request_create, then started and
-- finished by a worker through command_start and command_finish, with one event.

SELECT * FROM request_create('00000000-0000-4000-8009-000000000009',
                             '00000000-0000-4000-8000-000000000001', 'system.echo',
                             '{"text": "at version 9"}',
                             '{"type": "system.echo", "version": 1,
                               "payload": {"text": "at version 9"}}',
                             'exammentor.cmd.planner', 'client-retry-9');
SELECT * FROM command_start('planner', '00000000-0000-4000-8109-000000000009',
                            '00000000-0000-4000-8009-000000000009',
                            '00000000-0000-4000-8000-000000000001');
SELECT command_finish('planner', '00000000-0000-4000-8109-000000000009',
                      '00000000-0000-4000-8000-000000000001',
                      '00000000-0000-4000-8009-000000000009',
                      '{"echo": "at version 9", "service": "planner"}', NULL,
                      ARRAY['00000000-0000-4000-8209-000000000009']::uuid[],
                      ARRAY['exammentor.events.system'],
                      ARRAY['00000000-0000-4000-8000-000000000001'::bytea],
                      ARRAY['{"type": "system.echoed", "version": 1}'::jsonb],
                      ARRAY['{"event-type": "system.echoed"}'::jsonb]);
