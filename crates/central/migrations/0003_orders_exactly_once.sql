-- Orders exactly once (contract version 2, section 6), portable SQL as in 0001.
-- create_open: a KA create was recorded (ka_attempts bumped by a compare-and-set) and its
--   outcome is not known yet; nothing creates again until a lookup KA answered found no key.
-- attempt_until: no lookup before this (ms): a create still in flight would be missed.
-- next_at: when a driver looks at the order again (replaces sleeps in a task).
-- transient: consecutive transient failures (the backoff). retries: `orders retry` count.
-- lease_owner / lease_until: which replica's driver works on it now (efficiency only; the
--   create is fenced by the compare-and-set, never by the lease).
ALTER TABLE orders ADD COLUMN create_open BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN attempt_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN next_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN transient BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN retries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN lease_owner TEXT;
ALTER TABLE orders ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
-- A pending order that was tried before this version may have a key at KA: look it up first.
UPDATE orders SET create_open = 1 WHERE state = 'pending' AND ka_attempts > 0;
CREATE INDEX orders_due ON orders (state, next_at);
