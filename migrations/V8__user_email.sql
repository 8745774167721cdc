-- kind: expand
-- An optional e-mail address per user, set by admins, for notifications
-- (a stored export is ready) when SMTP is configured. Older binaries
-- ignore the column.

ALTER TABLE users ADD COLUMN email text
    CHECK (email IS NULL OR (length(email) <= 254 AND position('@' IN email) > 1));
