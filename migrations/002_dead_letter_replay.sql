-- Operators replay a dead letter once its cause is fixed; the row remembers when, so the
-- same letter is not replayed twice by accident.
ALTER TABLE dead_letters ADD COLUMN replayed_at timestamptz;
CREATE INDEX dead_letters_pending_idx ON dead_letters (created_at) WHERE replayed_at IS NULL;
