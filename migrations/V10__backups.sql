-- kind: expand
-- Every backup the appliance wrote and read back (`mogothrow77 backup`,
-- the upgrade tool's pre-migration backup): what `diagnose` reports as the
-- last backup and its age. Older binaries never read it.
CREATE TABLE backups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    archive text NOT NULL,
    bytes bigint NOT NULL CHECK (bytes >= 0),
    test_restored boolean NOT NULL,
    host text NOT NULL
);
CREATE INDEX backups_finished_at ON backups (finished_at DESC);
