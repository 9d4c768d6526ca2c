-- When a refresh token was rotated, to the millisecond: the reuse grace
-- (REFRESH_REUSE_GRACE_SECS) is exact, where whole seconds let a reuse through up to a second
-- late. NULL for tokens rotated before this column existed (their used_at counts then).
ALTER TABLE refresh_tokens ADD COLUMN used_at_ms BIGINT;
