CREATE OR REPLACE FUNCTION public.ps_position_event()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_position bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(4, 0);
    v_position := nextval('operation_events_position');
    UPDATE operation_events SET position = v_position WHERE event_id = NEW.event_id;
    PERFORM pg_notify('pacsync_events', v_position::text);
    RETURN NULL;
END $function$
;
