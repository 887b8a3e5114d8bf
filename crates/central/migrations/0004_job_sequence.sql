-- Jobs are ordered by a counter in the database, not the clock: a clock stepped back across a
-- restart, or two replicas' clocks apart, must not list a newer job before an older one.
-- Portable SQL as in 0001 (SQLite has no sequences): one row, bumped in the transaction that
-- queues the job (PostgreSQL: its row lock orders concurrent queuers, across replicas too).
-- Existing jobs keep their clock-made seq; the counter starts above the largest, so their
-- order stays and every new job comes after them.
CREATE TABLE job_sequence (
    id BIGINT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO job_sequence (id, value) SELECT 1, COALESCE(MAX(seq), 0) FROM jobs;
