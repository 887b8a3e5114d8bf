-- Portable SQL (SQLite and PostgreSQL): TEXT, BIGINT, no AUTOINCREMENT/SERIAL; times are unix
-- milliseconds, hashes lowercase hex.

-- One row per Plesk server. buy_url / catalog_url: NULL = the fleet value, '' = the key must be
-- absent. rev is bumped in the same transaction as every change that concerns the host.
CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    push_url TEXT,
    push_secret TEXT NOT NULL,
    buy_url TEXT,
    catalog_url TEXT,
    rev BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    key_number TEXT,
    agent_version TEXT,
    report TEXT,
    report_at BIGINT
);
CREATE INDEX hosts_key_number ON hosts (key_number);

-- The queue. seq orders a host's jobs as they were queued; activation_code is erased (NULL)
-- when the job ends or is cancelled; result is the agent's body as received.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts (id),
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    activation_code TEXT,
    idempotency_key TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT,
    result TEXT,
    UNIQUE (host_id, idempotency_key)
);
CREATE INDEX jobs_host_state ON jobs (host_id, state, seq);
CREATE INDEX jobs_state ON jobs (state, seq);
