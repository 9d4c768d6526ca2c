-- The whole schema (SQLite dialect of migrations/postgres). Times are Unix seconds (INTEGER).
-- Codes and tokens are stored only as SHA-256 hex hashes; client secrets only as argon2id PHC strings.

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash TEXT,
    metadata    TEXT   NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE users (
    sub        TEXT PRIMARY KEY,
    profile    TEXT   NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE auth_requests (
    id_hash      TEXT PRIMARY KEY,
    browser_hash TEXT   NOT NULL,
    request      TEXT   NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    sub        TEXT   NOT NULL,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE authorization_codes (
    code_hash  TEXT PRIMARY KEY,
    grant_id   TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    details    TEXT   NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    sub        TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    session_id TEXT,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id);
CREATE INDEX access_tokens_session_id ON access_tokens (session_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    sub        TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    session_id TEXT,
    auth_time  INTEGER NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Revoked grants, kept until their longest-lived token would have expired: a late request that
-- races the revocation (a refresh in flight while a reused code is detected) still finds it here.
CREATE TABLE revoked_grants (
    grant_id   TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL UNIQUE,
    alg         TEXT   NOT NULL,
    private_jwk TEXT   NOT NULL,
    public_jwk  TEXT   NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    event     TEXT   NOT NULL,
    outcome   TEXT   NOT NULL,
    sub       TEXT,
    client_id TEXT,
    reason    TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
