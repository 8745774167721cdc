-- kind: expand
-- Secrets at rest (appliance/src/secrets, ADR 0027): every secret column
-- gets a sealed twin, the value encrypted with AES-256-GCM under a
-- key-encryption key from secrets.key_file (never in the database), the
-- key's id stored in each value. The clear columns stay and keep being
-- written while the previous release may run on this schema (it reads
-- them); a later contract migration drops them.
ALTER TABLE webhooks
    ADD COLUMN secret_sealed bytea,
    ADD COLUMN previous_secret_sealed bytea;
ALTER TABLE users
    ADD COLUMN totp_secret_sealed bytea,
    ADD COLUMN totp_pending_secret_sealed bytea;

-- The CSRF and cursor keys rotate with an overlap: the previous key still
-- verifies until previous_until, and a new key only signs from active_from,
-- once every replica has read it (they re-read these rows every 30 s).
-- Releases before this one read `key` only.
ALTER TABLE server_keys
    ADD COLUMN key_sealed bytea,
    ADD COLUMN previous_key bytea CHECK (octet_length(previous_key) >= 32),
    ADD COLUMN previous_key_sealed bytea,
    ADD COLUMN previous_until timestamptz,
    ADD COLUMN active_from timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN rotated_at timestamptz;

-- Which key-encryption key seals new values: one row, set by the first
-- server to start and by `mogothrow77 admin rotate-keys`. A seal reads it
-- FOR SHARE, so a rotation (FOR UPDATE) re-seals every value written before.
CREATE TABLE secrets_key (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    key_id     text NOT NULL CHECK (key_id ~ '^[0-9a-f]{8,32}$'),
    since      timestamptz NOT NULL DEFAULT now()
);
