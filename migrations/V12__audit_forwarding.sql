-- kind: expand
-- How far each audit forwarding destination (`[audit]`: syslog, file,
-- journal) has received the audit log: the newest entry it confirmed.
-- Forwarding resumes after it, so a destination that was down gets what it
-- missed.
CREATE TABLE audit_forward_cursors (
    sink       text PRIMARY KEY,
    seq        bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
