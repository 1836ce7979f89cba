-- Back to version 8: the services send the statements these functions ran (a release of
-- version 8 never calls them).
DROP FUNCTION IF EXISTS command_finish(text, uuid, uuid, uuid, jsonb, jsonb, uuid[], text[],
                                       bytea[], jsonb[], jsonb[]);
DROP FUNCTION IF EXISTS command_start(text, uuid, uuid, uuid);
DROP FUNCTION IF EXISTS request_create(uuid, uuid, text, jsonb, jsonb, text, text);
