-- Enroll keys (contract version 2, section 10), portable SQL as in 0001.
-- A key is printed once as prk_<id>_<secret>; only the id and the SHA-256 of the secret are
-- kept (a 256-bit random secret needs no slow hash). uses_left is decremented by a
-- conditional UPDATE (uses_left > 0) in the transaction that creates the host, so N requests
-- at once with a key of N uses make exactly N hosts, on SQLite and on PostgreSQL alike.
-- host_pattern: a glob over host ids; bound_host: the one host id the key may enroll (and
-- re-enroll). revoked_at / last_used_at / expires_at / created_at: unix milliseconds.
CREATE TABLE enroll_keys (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    note TEXT,
    uses_total BIGINT NOT NULL,
    uses_left BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    host_pattern TEXT,
    bound_host TEXT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
-- Which key enrolled a host (NULL: `hosts add`), and when it last did.
ALTER TABLE hosts ADD COLUMN enrolled_by TEXT;
ALTER TABLE hosts ADD COLUMN enrolled_at BIGINT;
CREATE INDEX hosts_enrolled_by ON hosts (enrolled_by);
