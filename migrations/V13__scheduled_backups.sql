-- kind: expand
-- Scheduled backups and drills (`[backup]`): each schedule slot is taken by
-- one job (any replica may enqueue it; the primary key lets only the first), and a
-- backup remembers its slot, the record count of every collection in the
-- dump's own snapshot, the archive's SHA-256, where its copies went, when
-- pruning removed its archive, and its newest restore drill (`backup
-- drill`). Older binaries never read these.
CREATE TABLE backup_slots (
    kind      text NOT NULL CHECK (kind IN ('backup', 'drill')),
    slot      timestamptz NOT NULL,
    job_id    bigint NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, slot)
);
ALTER TABLE backups
    ADD COLUMN scheduled_for timestamptz,
    ADD COLUMN record_counts jsonb,
    ADD COLUMN sha256 text,
    ADD COLUMN copies jsonb,
    ADD COLUMN seconds double precision,
    ADD COLUMN pruned_at timestamptz,
    ADD COLUMN drilled_at timestamptz,
    ADD COLUMN drill_ok boolean,
    ADD COLUMN drill_report jsonb;
CREATE INDEX backups_drilled_at ON backups (drilled_at DESC) WHERE drilled_at IS NOT NULL;
CREATE UNIQUE INDEX backups_scheduled_for ON backups (scheduled_for)
    WHERE scheduled_for IS NOT NULL;
