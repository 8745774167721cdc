-- kind: expand
-- One-time password reset links (`mogothrow77 admin reset-password NAME`):
-- one per user at most, a new one replacing the old; only the token's
-- digest is kept. Used or expired links are deleted.
CREATE TABLE password_reset_links (
    user_id      bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_digest bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
