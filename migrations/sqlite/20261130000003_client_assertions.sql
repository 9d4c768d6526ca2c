-- JWT client authentication (RFC 7523, OIDC Core §9).

-- Each client assertion's jti is accepted once, across every replica (RFC 7523 §3 item 7). Kept
-- until the assertion expires; purged with the other expired rows.
CREATE TABLE client_assertion_jtis (
    jti_hash   TEXT PRIMARY KEY,
    client_id  TEXT   NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);

-- client_secret_jwt needs the secret itself as the HS256 key, which an argon2 hash cannot give
-- back: clients registered for it keep a copy sealed with KEY_ENCRYPTION_KEY (plain without one).
CREATE TABLE client_jwt_secrets (
    client_id TEXT PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
    secret    TEXT NOT NULL
);
