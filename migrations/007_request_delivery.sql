-- A request and its command commit together: the gateway stores the command (and its topic)
-- on the request row in the same transaction, then publishes it. A command that never
-- reached Kafka (the gateway died between commit and publish, or the broker did not answer)
-- is published again by the gateway's sweeper; one that stays unpicked, or a request stuck
-- running, is ended by the reaper with a clear error. A client's Idempotency-Key names its
-- request, so a retry gets the same request instead of a second one.

ALTER TABLE requests ADD COLUMN command jsonb;
ALTER TABLE requests ADD COLUMN topic text;
ALTER TABLE requests ADD COLUMN publish_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN idempotency_key text
  CHECK (length(idempotency_key) BETWEEN 1 AND 200);

CREATE UNIQUE INDEX requests_idempotency_idx ON requests (user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX requests_unfinished_idx ON requests (updated_at)
  WHERE status IN ('pending', 'running');

-- Both run as the owner (SECURITY DEFINER): the sweep spans every user's requests, which
-- row-level security hides from the service role; they return only what the gateway needs.

CREATE FUNCTION requests_to_republish(p_older_than interval, p_max_attempts integer,
                                      p_limit integer)
  RETURNS TABLE (id uuid, topic text, command jsonb)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public
  AS $$
    UPDATE requests r
       SET publish_attempts = r.publish_attempts + 1, updated_at = now()
     WHERE r.id IN (SELECT q.id FROM requests q
                     WHERE q.status = 'pending' AND q.command IS NOT NULL
                       AND q.updated_at < now() - p_older_than
                       AND q.publish_attempts < p_max_attempts
                     ORDER BY q.updated_at
                     LIMIT p_limit
                     FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.topic, r.command
  $$;

CREATE FUNCTION expire_requests(p_pending_for interval, p_running_for interval,
                                p_max_attempts integer)
  RETURNS TABLE (id uuid, user_id uuid, status text)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public
  AS $$
    UPDATE requests r
       SET status = 'failed', updated_at = now(), completed_at = now(),
           error = jsonb_build_object(
             'code', 'expired',
             'message', CASE r.status
               WHEN 'pending' THEN 'no service took the request in time; send it again'
               ELSE 'the request did not finish in time; send it again' END)
     WHERE (r.status = 'pending' AND r.publish_attempts >= p_max_attempts
            AND r.updated_at < now() - p_pending_for)
        OR (r.status = 'running' AND r.updated_at < now() - p_running_for)
    RETURNING r.id, r.user_id, 'failed'::text
  $$;

REVOKE ALL ON FUNCTION requests_to_republish(interval, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION expire_requests(interval, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION requests_to_republish(interval, integer, integer) TO exammentor_app;
GRANT EXECUTE ON FUNCTION expire_requests(interval, interval, integer) TO exammentor_app;
