-- Schema v4: the quiz service and the learner model. Every question a student is shown is
-- stored with its answer (graded in code by id), every answer is logged (the learner
-- model's evidence, refitted by `exammentor learner fit`), mastery is kept per concept and
-- per topic where sessions and the autopilot read it, and misconceptions are records with a
-- lifecycle. Per-user tables are under row-level security, enabled and forced.

CREATE TABLE quiz_questions (
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id           text NOT NULL,
  quiz_id      uuid NOT NULL,
  topic        text NOT NULL,
  concept      text NOT NULL,
  question     jsonb NOT NULL,
  item_rating  double precision NOT NULL DEFAULT 0,
  item_answers integer NOT NULL DEFAULT 0 CHECK (item_answers >= 0),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX quiz_questions_topic_idx ON quiz_questions (user_id, topic, created_at DESC);
CREATE INDEX quiz_questions_quiz_idx ON quiz_questions (user_id, quiz_id);

CREATE TABLE quiz_answers (
  id          uuid PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  question_id text NOT NULL,
  request_id  uuid NOT NULL,
  topic       text NOT NULL,
  concept     text NOT NULL,
  answer      jsonb NOT NULL DEFAULT 'null',
  outcome     text NOT NULL CHECK (outcome IN ('correct', 'wrong', 'skipped')),
  answered_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (user_id, question_id) REFERENCES quiz_questions (user_id, id) ON DELETE CASCADE
);
CREATE INDEX quiz_answers_user_idx ON quiz_answers (user_id, answered_at);
CREATE INDEX quiz_answers_question_idx ON quiz_answers (user_id, question_id);

CREATE TABLE learner_concepts (
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  concept_key    text NOT NULL,
  concept        text NOT NULL,
  topic          text NOT NULL,
  p_mastery      double precision NOT NULL CHECK (p_mastery BETWEEN 0 AND 1),
  status         text NOT NULL,
  attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  correct        integer NOT NULL DEFAULT 0 CHECK (correct >= 0),
  evidence       jsonb NOT NULL DEFAULT '[]',
  skill_rating   double precision NOT NULL DEFAULT 0,
  skill_answers  integer NOT NULL DEFAULT 0 CHECK (skill_answers >= 0),
  review_card    jsonb,
  next_review    timestamptz,
  last_attempted timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, concept_key)
);

CREATE TABLE learner_topics (
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  topic_key      text NOT NULL,
  topic          text NOT NULL,
  score          double precision NOT NULL CHECK (score BETWEEN 0 AND 100),
  status         text NOT NULL,
  attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  evidence       jsonb NOT NULL DEFAULT '[]',
  last_attempted timestamptz,
  next_review    timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, topic_key)
);

CREATE TABLE misconception_records (
  user_id                uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id                     text NOT NULL,
  concept                text NOT NULL,
  topic                  text NOT NULL,
  state                  text NOT NULL CHECK (state IN ('open', 'redeemed', 'resolved')),
  question_id            text NOT NULL,
  redemption_question_id text,
  record                 jsonb NOT NULL,
  diagnosis              jsonb NOT NULL DEFAULT '{}',
  opened_at              timestamptz NOT NULL,
  recheck_due            timestamptz,
  updated_at             timestamptz NOT NULL,
  PRIMARY KEY (user_id, id)
);
CREATE INDEX misconception_records_state_idx
  ON misconception_records (user_id, state, opened_at DESC);
CREATE INDEX misconception_records_redemption_idx
  ON misconception_records (user_id, redemption_question_id);

-- Fitted knowledge-tracing parameters, written by the operator's `exammentor learner fit`
-- (which reads every user's answer log as the owner); not user data, read by the service.
CREATE TABLE learner_params (
  concept_key    text PRIMARY KEY,
  prior          double precision NOT NULL,
  learn          double precision NOT NULL,
  slip           double precision NOT NULL,
  guess          double precision NOT NULL,
  forget         double precision NOT NULL,
  answers        integer NOT NULL,
  sequences      integer NOT NULL,
  log_likelihood double precision NOT NULL,
  fitted_at      timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['quiz_questions', 'quiz_answers', 'learner_concepts',
                           'learner_topics', 'misconception_records']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY %I ON %I USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id())',
      t || '_owner', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO exammentor_app', t);
  END LOOP;
END
$$;
GRANT SELECT ON learner_params TO exammentor_app;
