CREATE OR REPLACE FUNCTION public.ps_append_history(p_endpoint uuid, p_state text, p_arch text, p_pacman_version text, p_operation uuid)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    e endpoints;
    v_id bigint;
BEGIN
    SELECT * INTO e FROM endpoints WHERE endpoint_id = p_endpoint FOR NO KEY UPDATE;
    IF e.current_state_id IS NOT DISTINCT FROM p_state THEN
        RETURN e.current_history_id;
    END IF;
    INSERT INTO endpoint_states (endpoint_id, state_id, revert_to, architecture, pacman_version, operation_id)
    VALUES (p_endpoint, p_state, e.current_history_id, p_arch, p_pacman_version, p_operation)
    RETURNING history_id INTO v_id;
    UPDATE endpoints SET current_state_id = p_state, current_history_id = v_id WHERE endpoint_id = p_endpoint;
    RETURN v_id;
END $function$
;
