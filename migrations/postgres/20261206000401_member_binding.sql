-- A userid's binding to its sub ends for good when WeCom says the userid no longer exists
-- (60111, delete_user): the row stays, keeping its sub retired for life (the primary key), and
-- records when and why. A retired row can never hold a userid again, so WeCom giving the userid
-- to someone new gives that person a new sub.
ALTER TABLE users ADD COLUMN release_reason TEXT;
ALTER TABLE users ADD COLUMN released_at BIGINT;
ALTER TABLE users ADD CONSTRAINT users_released_has_no_userid
    CHECK (released_at IS NULL OR userid_key IS NULL);

-- Which clients received an ID token from each SSO session, kept as long as the session: every
-- one of them hears of the session's end by back-channel logout, whether or not it still holds a
-- live token.
CREATE TABLE session_clients (
    session_id TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    sub        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE INDEX session_clients_sub ON session_clients (sub);
CREATE INDEX session_clients_expires_at ON session_clients (expires_at);
