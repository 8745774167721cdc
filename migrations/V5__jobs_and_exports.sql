-- kind: expand
-- The job queue (appliance/src/jobs): durable work any replica can run.
-- A job is claimed with FOR UPDATE SKIP LOCKED, held under a lease that its
-- worker renews (a worker that dies stops renewing and the job is taken up
-- again), retried with backoff up to its kind's attempts, then dead. Every
-- attempt is kept in job_attempts. Inserting or re-queueing a job notifies
-- `m77_jobs` so idle workers wake at once.
--
-- Exports run as jobs; the file is stored here in chunks (any replica can
-- serve it, no shared volume), under the attempt that wrote it, and offered
-- only once that attempt finished.

CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    payload      jsonb NOT NULL,
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    run_at       timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz,
    worker       text,
    last_error   text,
    progress     jsonb,
    created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    request_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX jobs_ready ON jobs (run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, id);

CREATE TABLE job_attempts (
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('succeeded', 'failed', 'lease_expired', 'released', 'cancelled')),
    error       text,
    PRIMARY KEY (job_id, attempt)
);

CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state, run_at ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION m77_notify('m77_jobs');

CREATE TABLE exports (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       bigint NOT NULL UNIQUE REFERENCES jobs (id),
    collection   text NOT NULL,
    requested_by bigint REFERENCES users (id) ON DELETE SET NULL,
    query        jsonb NOT NULL,
    -- The attempt whose chunks are the file, set when it is complete.
    attempt      integer,
    rows_written bigint,
    bytes        bigint,
    sha256       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ready_at     timestamptz,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX exports_requested_by ON exports (requested_by, id);
CREATE INDEX exports_expires_at ON exports (expires_at);

CREATE TABLE export_chunks (
    export_id bigint NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    attempt   integer NOT NULL,
    seq       integer NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (export_id, attempt, seq)
);
-- Chunks are written once and read many times; keep them out of the
-- compression path (CSV is compressed by the client's transfer if at all).
ALTER TABLE export_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
