-- Row-level security forced on every table that holds a user's data, and the pipeline tables
-- (which hold users' commands, events and usage) protected too.
--
-- FORCE binds the tables' owner as well. The services' role (exammentor_app) owns nothing and
-- was bound already; forcing guards against work done as the owner (or a role later given
-- ownership) reading every user's rows by accident. Operators' commands that must see all
-- rows (backups, retention, dead-letter replay) run as an owner with BYPASSRLS or superuser.
--
-- Pipeline tables (inbox, outbox, dead_letters, llm_usage, autopilot_leases): the kit reads
-- and writes them without a user (the outbox relay, the dead-letter writer, usage records,
-- the autopilot's lease scan), and inside a user's transaction (a command's inbox row and
-- events). Their policy: inside a user's transaction only that user's rows; outside any user
-- (app.user_id unset, which only the kit's system transactions do) every row, including
-- rows of no user. A query run for one user never sees another user's commands or events.

-- The user of the transaction that wrote an event or a dead letter (NULL outside any user).
ALTER TABLE outbox ADD COLUMN user_id uuid DEFAULT app_user_id();
ALTER TABLE dead_letters ADD COLUMN user_id uuid DEFAULT app_user_id();
CREATE INDEX outbox_user_idx ON outbox (user_id);

-- Login looks a name up before anyone is signed in, through auth_credentials (SECURITY
-- DEFINER, run as the owner); forced security would hide every user from it unless the
-- owner bypasses RLS. The owner (and only a role that owns the table) may read users.
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_owner_lookup ON users FOR SELECT
  USING (pg_has_role(current_user,
                     (SELECT relowner FROM pg_class WHERE oid = 'public.users'::regclass),
                     'USAGE'));

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['study_sessions', 'topics', 'misconceptions', 'tutor_chats',
                           'quizzes', 'study_plans', 'requests', 'request_events']
  LOOP
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
  END LOOP;

  FOREACH t IN ARRAY ARRAY['inbox', 'outbox', 'dead_letters', 'llm_usage', 'autopilot_leases']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY %I ON %I '
      'USING (app_user_id() IS NULL OR user_id = app_user_id()) '
      'WITH CHECK (app_user_id() IS NULL OR user_id = app_user_id())',
      t || '_owner_or_system', t);
  END LOOP;
END
$$;
