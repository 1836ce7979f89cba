-- The tutor's own tables: study material per user, cut into passages that keep their page
-- numbers (ranked against each question), and every answer the tutor gave, whole or partial
-- (a stream whose client went away is stored as far as it got, marked partial).
-- Chats stay in tutor_chats (001). Expand only: new tables, indexes, policies and grants.

CREATE TABLE tutor_materials (
  id         uuid PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  request_id uuid NOT NULL UNIQUE,
  title      text NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('pdf', 'text')),
  page_count integer NOT NULL CHECK (page_count >= 0),
  chars      integer NOT NULL CHECK (chars >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tutor_materials_user_idx ON tutor_materials (user_id, created_at DESC);

CREATE TABLE tutor_passages (
  material_id uuid NOT NULL REFERENCES tutor_materials (id) ON DELETE CASCADE,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  position    integer NOT NULL CHECK (position >= 0),
  page        integer NOT NULL CHECK (page >= 1),
  text        text NOT NULL,
  PRIMARY KEY (material_id, position)
);
CREATE INDEX tutor_passages_user_idx ON tutor_passages (user_id);

CREATE TABLE tutor_answers (
  id                uuid PRIMARY KEY,
  user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  request_id        uuid NOT NULL UNIQUE,
  kind              text NOT NULL CHECK (kind IN ('explain', 'stream', 'lesson')),
  topic             text NOT NULL,
  topic_id          text,
  answer            jsonb NOT NULL,
  citations         jsonb NOT NULL DEFAULT '[]',
  partial           boolean NOT NULL DEFAULT false,
  prompt_tokens     integer NOT NULL DEFAULT 0,
  completion_tokens integer NOT NULL DEFAULT 0,
  latency_ms        double precision NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tutor_answers_user_idx ON tutor_answers (user_id, created_at DESC);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tutor_materials', 'tutor_passages', 'tutor_answers']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY %I ON %I USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id())',
      t || '_owner', t);
  END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON tutor_materials, tutor_passages, tutor_answers
  TO exammentor_app;
