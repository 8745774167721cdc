-- kind: expand
-- Notifications that keep each replica's caches true (appliance/src/cache.rs):
-- every change that can alter what an API token authenticates notifies
-- `m77_auth`, every change to a collection's catalog notifies `m77_catalog`,
-- in the changing transaction (delivered on commit). Older binaries do not
-- listen and are unaffected.

-- Notifies the channel named by the trigger's argument.
CREATE FUNCTION m77_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$;

-- A token's use stamps last_used_at; that alone changes nothing it grants.
CREATE TRIGGER api_tokens_notify_update AFTER UPDATE ON api_tokens
    FOR EACH ROW
    WHEN ((OLD.user_id, OLD.secret_digest, OLD.permissions, OLD.expires_at, OLD.revoked_at)
          IS DISTINCT FROM
          (NEW.user_id, NEW.secret_digest, NEW.permissions, NEW.expires_at, NEW.revoked_at))
    EXECUTE FUNCTION m77_notify('m77_auth');
CREATE TRIGGER api_tokens_notify_delete AFTER DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION m77_notify('m77_auth');

CREATE TRIGGER users_notify_update AFTER UPDATE ON users
    FOR EACH ROW
    WHEN ((OLD.username, OLD.role, OLD.disabled, OLD.totp_secret)
          IS DISTINCT FROM
          (NEW.username, NEW.role, NEW.disabled, NEW.totp_secret))
    EXECUTE FUNCTION m77_notify('m77_auth');
CREATE TRIGGER users_notify_delete AFTER DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION m77_notify('m77_auth');

CREATE TRIGGER security_settings_notify AFTER UPDATE OR DELETE OR TRUNCATE ON security_settings
    FOR EACH STATEMENT EXECUTE FUNCTION m77_notify('m77_auth');

CREATE TRIGGER collections_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON collections
    FOR EACH STATEMENT EXECUTE FUNCTION m77_notify('m77_catalog');
CREATE TRIGGER collection_fields_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON collection_fields
    FOR EACH STATEMENT EXECUTE FUNCTION m77_notify('m77_catalog');
