-- Down step of 002: back to version 1. The replay timestamps of dead letters are lost; the
-- letters themselves stay (a replayed letter then shows as pending again).
DROP INDEX dead_letters_pending_idx;
ALTER TABLE dead_letters DROP COLUMN replayed_at;
