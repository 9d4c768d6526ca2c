-- Sign-ins wait in a sealed cookie of the browser, no longer as an auth_requests row (which is
-- kept for requests too large for a cookie; see oidc::login_state). The WeCom state of each
-- completed sign-in is remembered until its request would have expired, so that a replayed
-- callback, cookie and all, completes nothing twice. Purged with the other expired rows.
CREATE TABLE consumed_login_states (
    state_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX consumed_login_states_expires_at ON consumed_login_states (expires_at);
