-- Events and their webhook deliveries (contract version 2, section 11), portable SQL as in 0001.
-- The outbox: a row is inserted in the same transaction as the change it describes, so an
-- event exists if and only if its change was committed. id comes from event_sequence, bumped
-- in that transaction: its row lock orders the writers (across replicas too), so ids follow
-- commit order and a reader of `?after=ID` never sees id 11 before id 10 exists.
-- data: the JSON `data` object (ids and states, never an activation code or token).
-- Delivery state beside it: delivery is pending, delivered, undeliverable or skipped (filtered
-- out by [webhooks] events); attempts and next_at are the backoff; lease_owner / lease_until
-- say which replica's worker is POSTing it now (taken by a conditional UPDATE, so one replica
-- delivers each attempt); last_error is the last failure in one line.
CREATE TABLE events (
    id BIGINT PRIMARY KEY,
    type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    data TEXT NOT NULL,
    delivery TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at BIGINT
);
CREATE INDEX events_due ON events (delivery, next_at);
CREATE INDEX events_created ON events (created_at);
CREATE TABLE event_sequence (
    id BIGINT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO event_sequence (id, value) VALUES (1, 0);
-- host.offline / host.back: the transition is a conditional UPDATE of this flag, so it is
-- recorded once whichever replica sees it first.
ALTER TABLE hosts ADD COLUMN offline BIGINT NOT NULL DEFAULT 0;
CREATE INDEX hosts_offline ON hosts (offline);
