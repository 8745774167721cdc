-- kind: expand
-- People and their credentials, sessions, API tokens, the first-admin setup
-- token, login throttling, server keys, idempotency records and the
-- hash-chained audit log. See docs/security.md.

CREATE TABLE users (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username             text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    display_name         text NOT NULL DEFAULT '',
    role                 text NOT NULL CHECK (role IN ('admin', 'editor', 'viewer', 'auditor')),
    password_hash        text NOT NULL,
    disabled             boolean NOT NULL DEFAULT false,
    totp_secret          bytea,
    totp_pending_secret  bytea,
    totp_last_step       bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE recovery_codes (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_digest bytea NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_digest)
);

-- Only a digest of the session id is stored: a copy of the table does not
-- let anyone sign in.
CREATE TABLE sessions (
    id_digest    bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    client_addr  text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,
    secret_digest bytea NOT NULL UNIQUE,
    permissions   text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

CREATE TABLE setup_tokens (
    token_digest bytea PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

-- Failed sign-ins per account name and per client address, shared by all
-- replicas.
CREATE TABLE login_throttle (
    key               text PRIMARY KEY,
    failures          integer NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz
);

-- Keys generated once per installation (CSRF tokens, cursors), so that any
-- replica can check what another one issued.
CREATE TABLE server_keys (
    name       text PRIMARY KEY,
    key        bytea NOT NULL CHECK (octet_length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE security_settings (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    require_mfa boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO security_settings DEFAULT VALUES;

CREATE TABLE idempotency_keys (
    principal      text NOT NULL,
    key            text NOT NULL,
    method         text NOT NULL,
    path           text NOT NULL,
    request_digest bytea NOT NULL,
    status         integer,
    content_type   text,
    body           bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- The audit log: append-only and hash-chained. Each entry's hash covers the
-- previous entry's hash, so editing or deleting any entry breaks the chain
-- from there on (`mogothrow77 audit verify`). The head row records the last
-- sequence number and hash, so deleting the newest entries shows too.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY,
    occurred_at  timestamptz NOT NULL,
    actor_id     bigint,
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL DEFAULT '',
    outcome      text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    client_addr  text NOT NULL DEFAULT '',
    request_id   text NOT NULL DEFAULT '',
    details      text NOT NULL DEFAULT '{}',
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_actor_id ON audit_log (actor_id, seq);

CREATE TABLE audit_chain_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- The head moves forward one entry per append, never back, and is never
-- removed.
CREATE FUNCTION audit_chain_head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id AND NEW.seq = OLD.seq + 1 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit chain head only moves forward, one entry per append'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_chain_head_forward_only
    BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_moves_forward();
CREATE TRIGGER audit_chain_head_no_truncate
    BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_moves_forward();

-- The application role got SELECT, INSERT, UPDATE, DELETE through default
-- privileges; it may only read and append to the audit log.
DO $$
DECLARE
    grantee regrole;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid IN ('audit_log'::regclass, 'audit_chain_head'::regclass)
          AND a.grantee <> 0
          AND a.grantee <> c.relowner
          AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM %s', grantee);
        EXECUTE format('REVOKE DELETE, TRUNCATE ON audit_chain_head FROM %s', grantee);
    END LOOP;
END;
$$;
