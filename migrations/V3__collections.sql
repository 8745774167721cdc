-- kind: expand
-- Collections and their typed fields. Each collection's records live in
-- their own table `records.c_<collection id>`, one typed column
-- `f_<field id>` per field, created by the application at run time (names
-- are generated, never taken from user input). See ADR 0005.

CREATE SCHEMA records;

CREATE TABLE collections (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    title      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX collections_name_key ON collections (name);

CREATE TABLE collection_fields (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    field_type    text NOT NULL CHECK (field_type IN
                    ('text', 'integer', 'decimal', 'boolean', 'date', 'timestamp', 'enum', 'json')),
    required      boolean NOT NULL DEFAULT false,
    is_unique     boolean NOT NULL DEFAULT false,
    indexed       boolean NOT NULL DEFAULT false,
    sensitive     boolean NOT NULL DEFAULT false,
    enum_values   text[] NOT NULL DEFAULT '{}',
    default_value jsonb,
    position      integer NOT NULL,
    hidden_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX collection_fields_visible_name
    ON collection_fields (collection_id, name) WHERE hidden_at IS NULL;
CREATE INDEX collection_fields_collection ON collection_fields (collection_id);

-- A record's history in the audit log (`GET /api/v1/audit?target=…`).
CREATE INDEX audit_log_target ON audit_log (target, seq);

-- The application role creates and alters the collection tables, and only
-- in this schema: it gets USAGE and CREATE on it (it already has row
-- access to the metadata above through default privileges). The role is
-- the one the owner grants default privileges to (see
-- docs/operations.md); when migrations and the application share one
-- role, it owns the schema already.
DO $$
DECLARE
    grantee regrole;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_default_acl d, aclexplode(d.defaclacl) a
        WHERE d.defaclrole = current_user::regrole
          AND d.defaclobjtype = 'r'
          AND a.grantee <> 0
          AND a.grantee <> current_user::regrole
    LOOP
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA records TO %s', grantee);
    END LOOP;
END;
$$;
