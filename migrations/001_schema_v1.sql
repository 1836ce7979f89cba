-- Schema v1: every table of the original system (with its defects fixed) plus what the
-- pipeline needs. Row-level security is per user: services connect as exammentor_app, which
-- owns nothing and cannot bypass RLS, and set app.user_id inside each transaction.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'exammentor_app') THEN
    CREATE ROLE exammentor_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END
$$;

-- The user of the current transaction, or NULL when none is set (then no user row matches).
CREATE FUNCTION app_user_id() RETURNS uuid
  LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE TABLE users (
  id            uuid PRIMARY KEY,
  name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 80),
  email         text UNIQUE,
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- Login must find a user by name before anyone is signed in; this function (owned by the
-- migration role, which RLS does not bind) returns only the id and hash of one name.
CREATE FUNCTION auth_credentials(p_name text)
  RETURNS TABLE (id uuid, password_hash text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$ SELECT u.id, u.password_hash FROM users u WHERE u.name = p_name $$;

CREATE TABLE study_sessions (
  id              uuid PRIMARY KEY,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  exam_type       text NOT NULL DEFAULT 'none',
  current_state   text NOT NULL DEFAULT 'INTAKE',
  metadata        jsonb NOT NULL DEFAULT '{}',
  current_context jsonb NOT NULL DEFAULT '{}',
  agent_history   jsonb NOT NULL DEFAULT '[]',
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX study_sessions_user_idx ON study_sessions (user_id);

CREATE TABLE topics (
  id            uuid PRIMARY KEY,
  session_id    uuid NOT NULL REFERENCES study_sessions (id) ON DELETE CASCADE,
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name          text NOT NULL,
  status        text NOT NULL DEFAULT 'pending',
  mastery_score integer NOT NULL DEFAULT 0 CHECK (mastery_score BETWEEN 0 AND 100)
);
CREATE INDEX topics_session_idx ON topics (session_id);
CREATE INDEX topics_user_idx ON topics (user_id);

CREATE TABLE misconceptions (
  id          uuid PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  topic_id    uuid REFERENCES topics (id) ON DELETE SET NULL,
  description text NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX misconceptions_user_idx ON misconceptions (user_id);
CREATE INDEX misconceptions_topic_idx ON misconceptions (topic_id);

-- Shared across users on purpose: a hit needs the same normalised inputs, syllabus text
-- included, so it reveals nothing the asker did not already send.
CREATE TABLE plan_cache (
  id         uuid PRIMARY KEY,
  cache_key  text NOT NULL UNIQUE,
  plan       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX plan_cache_expiry_idx ON plan_cache (expires_at);

CREATE TABLE tutor_chats (
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  topic_id     text NOT NULL,
  messages     jsonb NOT NULL DEFAULT '[]',
  explanation  jsonb,
  last_updated timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, topic_id)
);

CREATE TABLE quizzes (
  id         uuid PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  topic_id   text NOT NULL,
  questions  jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quizzes_user_topic_idx ON quizzes (user_id, topic_id, created_at DESC);

CREATE TABLE study_plans (
  id           uuid PRIMARY KEY,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  session_id   uuid REFERENCES study_sessions (id) ON DELETE SET NULL,
  request_id   uuid NOT NULL UNIQUE,
  plan         jsonb NOT NULL,
  verification jsonb,
  history      jsonb,
  from_cache   boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX study_plans_user_idx ON study_plans (user_id, created_at DESC);

-- One row per client request; the final result stays here so a client that lost its stream
-- can fetch it by id.
CREATE TABLE requests (
  id           uuid PRIMARY KEY,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind         text NOT NULL,
  status       text NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'running', 'done', 'failed')),
  payload      jsonb NOT NULL DEFAULT '{}',
  result       jsonb,
  error        jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
CREATE INDEX requests_user_idx ON requests (user_id, created_at DESC);

-- Progress of a request as it was streamed, so a client can resume from a sequence number.
CREATE TABLE request_events (
  request_id uuid NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
  seq        bigint NOT NULL,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  body       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (request_id, seq)
);

-- Pipeline tables: written by services for every user, read by operators; no user reads
-- them through the API, so they carry no RLS.
CREATE TABLE inbox (
  consumer   text NOT NULL,
  command_id uuid NOT NULL,
  user_id    uuid,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, command_id)
);

CREATE TABLE outbox (
  id           bigserial PRIMARY KEY,
  event_id     uuid NOT NULL UNIQUE,
  topic        text NOT NULL,
  key          bytea NOT NULL,
  envelope     jsonb NOT NULL,
  headers      jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE dead_letters (
  id         bigserial PRIMARY KEY,
  consumer   text NOT NULL,
  topic      text NOT NULL,
  partition  integer NOT NULL,
  "offset"   bigint NOT NULL,
  key        bytea,
  value      bytea,
  reason     text NOT NULL,
  attempts   integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (consumer, topic, partition, "offset")
);

CREATE TABLE llm_usage (
  id                bigserial PRIMARY KEY,
  service           text NOT NULL,
  purpose           text NOT NULL,
  model             text NOT NULL,
  prompt_tokens     integer NOT NULL,
  completion_tokens integer NOT NULL,
  latency_ms        double precision NOT NULL,
  outcome           text NOT NULL,
  user_id           uuid,
  request_id        uuid,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_usage_created_idx ON llm_usage (created_at);

-- Per-user isolation.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_self ON users
  USING (id = app_user_id()) WITH CHECK (id = app_user_id());

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['study_sessions', 'topics', 'misconceptions', 'tutor_chats',
                           'quizzes', 'study_plans', 'requests', 'request_events']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY %I ON %I USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id())',
      t || '_owner', t);
  END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO exammentor_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO exammentor_app;
GRANT EXECUTE ON FUNCTION app_user_id(), auth_credentials(text) TO exammentor_app;
-- The migration bookkeeping is not the services' business.
REVOKE ALL ON schema_migrations FROM exammentor_app;
