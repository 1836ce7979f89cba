-- Down step of 004: back to version 3. The quiz's stored questions, answer log, learner
-- model and misconception records are lost; the original's tables (quizzes, topics,
-- misconceptions) keep their rows.
DROP TABLE learner_params;
DROP TABLE misconception_records;
DROP TABLE learner_topics;
DROP TABLE learner_concepts;
DROP TABLE quiz_answers;
DROP TABLE quiz_questions;
