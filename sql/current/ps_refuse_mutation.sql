CREATE OR REPLACE FUNCTION public.ps_refuse_mutation()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    -- Nested IFs: PL/pgSQL does not short-circuit, and audit_log rows have no position.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'operation_events' THEN
        IF (to_jsonb(OLD) ->> 'position') IS NULL AND (to_jsonb(NEW) ->> 'position') IS NOT NULL
           AND (to_jsonb(NEW) - 'position') = (to_jsonb(OLD) - 'position') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'PS090';
END $function$
;
