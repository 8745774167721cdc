-- kind: expand
-- The audit chain head may move forward by several entries at once (a
-- batch write appends its entries with one insert), never back, and only
-- onto an entry the log holds with the hash the head names. Releases
-- before this one move it one entry at a time, which this allows too.
CREATE OR REPLACE FUNCTION audit_chain_head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id AND NEW.seq > OLD.seq
       AND EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit chain head only moves forward, onto an entry of the log'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
