-- Down step of 001: back to an empty schema (version 0). Every table, policy and function
-- of schema v1 goes, with all its rows: take a backup first (exammentor backup create).
-- No CASCADE: an object someone added by hand that depends on these makes the step fail
-- (and roll back) instead of vanishing silently.
-- The role exammentor_app stays: roles belong to the server, not to this database, and other
-- databases on the same server (restored copies, test databases) use it.

DROP TABLE llm_usage, dead_letters, outbox, inbox, request_events, requests, study_plans,
  quizzes, tutor_chats, plan_cache, misconceptions, topics, study_sessions, users;

DROP FUNCTION auth_credentials(text);
DROP FUNCTION app_user_id();
