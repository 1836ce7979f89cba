-- Back to version 6: no stored commands, no idempotency keys, no sweeper or reaper.
DROP FUNCTION IF EXISTS expire_requests(interval, interval, integer);
DROP FUNCTION IF EXISTS requests_to_republish(interval, integer, integer);
DROP INDEX IF EXISTS requests_unfinished_idx;
DROP INDEX IF EXISTS requests_idempotency_idx;
ALTER TABLE requests DROP COLUMN IF EXISTS idempotency_key;
ALTER TABLE requests DROP COLUMN IF EXISTS publish_attempts;
ALTER TABLE requests DROP COLUMN IF EXISTS topic;
ALTER TABLE requests DROP COLUMN IF EXISTS command;
