-- Representative data of schema version 8 (migrations/008_maintenance.sql): the flag after
-- an operator's maintenance window ended (off again, its reason and who changed it kept).

UPDATE maintenance
   SET enabled = false, reason = 'upgrade to release 0.8', retry_after_s = 120,
       changed_at = '2026-01-12 06:30:00+00', changed_by = 'ops@exammentor'
 WHERE singleton;
