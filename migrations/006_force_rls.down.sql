-- Down step of 006: back to version 5. Row-level security is no longer forced on the user
-- tables of 001 and is off on the pipeline tables; the user_id of outbox rows and dead
-- letters is dropped (it is derived information: the envelopes still name the user).
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['inbox', 'outbox', 'dead_letters', 'llm_usage', 'autopilot_leases']
  LOOP
    EXECUTE format('DROP POLICY %I ON %I', t || '_owner_or_system', t);
    EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
  END LOOP;

  FOREACH t IN ARRAY ARRAY['study_sessions', 'topics', 'misconceptions', 'tutor_chats',
                           'quizzes', 'study_plans', 'requests', 'request_events']
  LOOP
    EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
  END LOOP;
END
$$;

DROP POLICY users_owner_lookup ON users;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;

DROP INDEX outbox_user_idx;
ALTER TABLE dead_letters DROP COLUMN user_id;
ALTER TABLE outbox DROP COLUMN user_id;
