-- The device authorization grant (RFC 8628). One row per device request: the device code and
-- the user code are kept as digests only; the row moves from pending to approved or denied on
-- the person's side, and to used when the device redeems it (once). Polling is paced by
-- last_polled_at and poll_interval (slow_down adds 5 s, RFC 8628 §3.5). Purged with the other
-- expired rows.
CREATE TABLE device_grants (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    requested_from   TEXT NOT NULL,
    requested_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    poll_interval    INTEGER NOT NULL,
    last_polled_at   INTEGER,
    status           TEXT NOT NULL,
    sub              TEXT,
    session_id       TEXT,
    details          TEXT
);
CREATE INDEX device_grants_expires_at ON device_grants (expires_at);
