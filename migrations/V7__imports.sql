-- kind: expand
-- Bulk imports (appliance/src/jobs/import.rs): a CSV or NDJSON file
-- uploaded into import_chunks (any replica's worker reads it; no shared
-- volume), imported by a job of kind 'import' in one transaction that also
-- marks the import finished, so a retried job never imports twice. Rows
-- that fail validation are reported in import_errors with their line.

CREATE TABLE imports (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
    collection    text NOT NULL,
    format        text NOT NULL CHECK (format IN ('csv', 'ndjson')),
    mode          text NOT NULL CHECK (mode IN ('all_or_nothing', 'skip_invalid')),
    requested_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    bytes         bigint NOT NULL,
    sha256        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Set when the job finished reading the file: completed (rows
    -- imported), rejected (all_or_nothing with invalid rows: nothing
    -- imported).
    outcome       text CHECK (outcome IN ('completed', 'rejected')),
    rows_total    bigint,
    rows_imported bigint,
    rows_failed   bigint,
    finished_at   timestamptz
);
CREATE INDEX imports_requested_by ON imports (requested_by, id);

CREATE TABLE import_chunks (
    import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (import_id, seq)
);
ALTER TABLE import_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE import_errors (
    import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    n         integer NOT NULL,
    line      bigint NOT NULL,
    field     text,
    message   text NOT NULL,
    PRIMARY KEY (import_id, n)
);
