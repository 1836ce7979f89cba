-- A command's hot transactions in one round trip each. Each function sets the user for
-- row-level security itself (app.user_id, for the transaction it runs in) and does in the
-- server what the client sent as three to six statements: BEGIN with the setting, the
-- statements, COMMIT. Measured on two cores, every round trip costs the gateway and the
-- worker CPU and waits a turn of their event loops under load.
--
-- They run as the caller (the service role), so row-level security holds as before. The
-- notification channels are the code's (exammentor.messaging.pipeline.REQUESTS_CHANNEL and
-- exammentor.messaging.outbox's channel); a unit test holds the two in step.

-- The gateway's new request with its command, or the one stored before under the same id or
-- idempotency key of this user (no row: the id is another user's).
CREATE FUNCTION request_create(p_id uuid, p_user uuid, p_kind text, p_payload jsonb,
                               p_command jsonb, p_topic text, p_idempotency_key text)
  RETURNS TABLE (request_id uuid, created boolean, request_kind text, request_payload jsonb)
  LANGUAGE plpgsql VOLATILE SET search_path = public
  AS $$
BEGIN
  PERFORM set_config('app.user_id', p_user::text, true);
  RETURN QUERY
    INSERT INTO requests AS r (id, user_id, kind, payload, command, topic, idempotency_key)
    VALUES (p_id, p_user, p_kind, p_payload, p_command, p_topic, p_idempotency_key)
    ON CONFLICT DO NOTHING
    RETURNING r.id, true, r.kind, r.payload;
  IF NOT FOUND THEN
    RETURN QUERY
      SELECT q.id, false, q.kind, q.payload FROM requests q
       WHERE q.id = p_id
          OR (p_idempotency_key IS NOT NULL AND q.idempotency_key = p_idempotency_key)
       ORDER BY q.id = p_id DESC LIMIT 1;
  END IF;
END
$$;

-- The start of a command's attempt: whether p_consumer applied it before, and if not, its
-- request marked running and the highest progress number stored for it. It is called as a
-- transaction of its own (exammentor.messaging.pipeline.start_attempt refuses a connection
-- inside one), which commits without waiting for the disk: it only marks the request
-- running, and a mark lost in a crash leaves it pending, which the command (not yet in the
-- inbox, so delivered again) marks again. A later commit that waits for the disk (the
-- command's end) writes it out with its own.
CREATE FUNCTION command_start(p_consumer text, p_command uuid, p_request uuid, p_user uuid)
  RETURNS TABLE (applied boolean, last_seq bigint)
  LANGUAGE plpgsql VOLATILE SET search_path = public
  AS $$
BEGIN
  PERFORM set_config('app.user_id', p_user::text, true);
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY
    WITH done AS (SELECT 1 FROM inbox i WHERE i.consumer = p_consumer
                                          AND i.command_id = p_command),
         running AS (UPDATE requests r SET status = 'running', updated_at = now()
                      WHERE r.id = p_request AND r.status = 'pending'
                        AND NOT EXISTS (SELECT 1 FROM done)
                      RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM done),
           coalesce((SELECT max(e.seq) FROM request_events e WHERE e.request_id = p_request),
                    0);
END
$$;

-- The end of a command's attempt: the command put in p_consumer's inbox, its request's
-- result (or error) stored once, and its events written to the outbox, each under its key's
-- lock (held until commit, so the relay's id order is each user's commit order). False, with
-- nothing written, when the inbox had the command already (applied elsewhere).
CREATE FUNCTION command_finish(p_consumer text, p_command uuid, p_user uuid, p_request uuid,
                               p_result jsonb, p_error jsonb, p_event_ids uuid[],
                               p_topics text[], p_keys bytea[], p_envelopes jsonb[],
                               p_headers jsonb[])
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SET search_path = public
  AS $$
BEGIN
  PERFORM set_config('app.user_id', p_user::text, true);
  INSERT INTO inbox (consumer, command_id, user_id) VALUES (p_consumer, p_command, p_user)
    ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE requests r
     SET status = CASE WHEN p_error IS NULL THEN 'done' ELSE 'failed' END,
         result = p_result, error = p_error, updated_at = now(), completed_at = now()
   WHERE r.id = p_request
     AND (r.status IN ('pending', 'running')
          OR (r.status = 'failed' AND r.error->>'code' = 'dead_lettered'));
  IF FOUND THEN
    PERFORM pg_notify('exammentor_requests', p_request::text);
  END IF;
  FOR i IN 1 .. coalesce(cardinality(p_event_ids), 0) LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended('outbox:' || encode(p_keys[i], 'hex'), 0));
    INSERT INTO outbox (event_id, topic, key, envelope, headers)
    VALUES (p_event_ids[i], p_topics[i], p_keys[i], p_envelopes[i], p_headers[i]);
  END LOOP;
  IF cardinality(p_event_ids) > 0 THEN
    PERFORM pg_notify('exammentor_outbox', '');
  END IF;
  RETURN true;
END
$$;

REVOKE ALL ON FUNCTION request_create(uuid, uuid, text, jsonb, jsonb, text, text),
  command_start(text, uuid, uuid, uuid),
  command_finish(text, uuid, uuid, uuid, jsonb, jsonb, uuid[], text[], bytea[], jsonb[],
                 jsonb[])
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION request_create(uuid, uuid, text, jsonb, jsonb, text, text),
  command_start(text, uuid, uuid, uuid),
  command_finish(text, uuid, uuid, uuid, jsonb, jsonb, uuid[], text[], bytea[], jsonb[],
                 jsonb[])
  TO exammentor_app;
