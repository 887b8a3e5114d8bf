-- Orders (contract section 6): the store's word that a customer paid, driven through KA to a
-- job. Portable SQL as in 0001. state: pending -> licensed -> queued -> done | failed.
-- ka_attempts is written BEFORE each KA create, so after a crash a non-zero count means "ask
-- KA by nickname (= id) first". activation_code is erased when the job ends; error is KA's
-- answer verbatim (or the job's result when the job failed).
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    host_id TEXT NOT NULL,
    key_number TEXT,
    extension_id TEXT,
    ka_item TEXT NOT NULL,
    state TEXT NOT NULL,
    ka_attempts BIGINT NOT NULL,
    ka_key_id BIGINT,
    ka_key_number TEXT,
    activation_code TEXT,
    job_id TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX orders_state ON orders (state);
CREATE INDEX orders_job ON orders (job_id);
