-- kind: expand
-- The appliance's own metadata: a single row identifying this installation.
-- Later migrations add the domain tables.

CREATE TABLE appliance_installation (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    instance_id uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO appliance_installation (instance_id) VALUES (gen_random_uuid());
