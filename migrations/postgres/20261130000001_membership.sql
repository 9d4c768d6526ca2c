-- Access follows WeCom membership.
-- `sub` stays a member's subject for life; `userid_key` (the lowercase WeCom userid) follows the
-- member through a userid change, so sign-in finds the subject by userid, never derives it again.
ALTER TABLE users ADD COLUMN userid_key TEXT;
UPDATE users SET userid_key = sub;
CREATE UNIQUE INDEX users_userid_key ON users (userid_key);
-- When WeCom last confirmed the member (user/get: status, visible range), and until when a
-- replica's background sweep holds the member (so two replicas never check the same member).
ALTER TABLE users ADD COLUMN checked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN sweep_lease_until BIGINT NOT NULL DEFAULT 0;

-- How the person authenticated (OIDC `amr`), kept with the session and through every refresh.
ALTER TABLE sessions ADD COLUMN amr TEXT;
ALTER TABLE refresh_tokens ADD COLUMN amr TEXT;
-- A code is redeemable only while the session it came from is alive.
ALTER TABLE authorization_codes ADD COLUMN session_id TEXT;

-- Revoking one member finds everything they hold by `sub`.
CREATE INDEX sessions_sub ON sessions (sub);
CREATE INDEX access_tokens_sub ON access_tokens (sub);
CREATE INDEX refresh_tokens_sub ON refresh_tokens (sub);

-- WeCom event deliveries already processed (SHA-256 of the decrypted message): a redelivery or a
-- replay is answered normally and has no second effect.
CREATE TABLE wecom_events (
    digest      TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX wecom_events_received_at ON wecom_events (received_at);

-- The background sweep's shared budget of WeCom calls for the current minute, across replicas.
CREATE TABLE member_sweep_budget (
    id           BIGINT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL
);
