-- Licenses and their operations (contract version 2, section 9). Portable SQL as in 0001
-- (TEXT, BIGINT, times in unix ms, booleans as 0/1; `||` and SUBSTR work on both databases).
--
-- licenses: one KA key the central knows, made by an order or adopted. id = KA's keyId.
--   items: the item constants the central expects (JSON array of strings), the target of the
--   last `change`; kind: plesk | extension; parent_id: the main license of an extension.
--   state: active | suspended | terminated | expired (what the central believes).
--   ka_*: KA's last-read fields with checked_at; drift: what reconcile found changed outside
--   the central (NULL: nothing), drift_at when.
CREATE TABLE licenses (
    id BIGINT PRIMARY KEY,
    key_number TEXT NOT NULL,
    kind TEXT NOT NULL,
    items TEXT NOT NULL,
    parent_id BIGINT,
    host_id TEXT,
    state TEXT NOT NULL,
    order_id TEXT,
    ka_status TEXT,
    ka_suspended BIGINT,
    ka_terminated BIGINT,
    ka_expiration_date TEXT,
    ka_auto_renew BIGINT,
    ka_items TEXT,
    checked_at BIGINT,
    drift TEXT,
    drift_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX licenses_key_number ON licenses (key_number);
CREATE INDEX licenses_host ON licenses (host_id);
CREATE INDEX licenses_parent ON licenses (parent_id);
CREATE INDEX licenses_checked ON licenses (state, checked_at);

-- license_operations: driven like orders (docs/orders.md): recorded before the KA call;
--   ka_attempts is bumped and call_open set by a compare-and-set before each KA call (the
--   fence); an open call whose answer was lost is settled by reading the key back after
--   attempt_until. state: pending -> done | failed. items: the target list of a `change`.
--   retrieve: 1 = a retrieve_keys job follows on the license's host (job_id once queued,
--   job_state beside it); job_wait: why the job is not queued yet (no host).
--   after_children: a terminate --with-extensions waits for its children's operations.
CREATE TABLE license_operations (
    id TEXT PRIMARY KEY,
    license_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    items TEXT,
    retrieve BIGINT NOT NULL,
    after_children BIGINT NOT NULL DEFAULT 0,
    parent_op TEXT,
    state TEXT NOT NULL,
    ka_attempts BIGINT NOT NULL DEFAULT 0,
    call_open BIGINT NOT NULL DEFAULT 0,
    attempt_until BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    transient BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    job_id TEXT,
    job_state TEXT,
    job_wait TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- One operation at a time per license, enforced by the database (two replicas included).
CREATE UNIQUE INDEX license_operations_one_pending ON license_operations (license_id) WHERE state = 'pending';
CREATE INDEX license_operations_license ON license_operations (license_id, created_at);
CREATE INDEX license_operations_due ON license_operations (state, next_at);
CREATE INDEX license_operations_job ON license_operations (job_id);

-- Every order that KA answered (it has a key id) is a license, whatever became of its job.
INSERT INTO licenses (id, key_number, kind, items, parent_id, host_id, state, order_id, created_at, updated_at)
SELECT ka_key_id, ka_key_number, kind, '["' || ka_item || '"]',
       CASE WHEN kind = 'extension' AND key_number IS NOT NULL
            THEN CAST(SUBSTR(key_number, 6, 8) AS BIGINT) ELSE NULL END,
       host_id, 'active', id, updated_at, updated_at
FROM orders
WHERE ka_key_id IS NOT NULL AND ka_key_number IS NOT NULL
  AND state IN ('licensed', 'queued', 'done', 'failed');
