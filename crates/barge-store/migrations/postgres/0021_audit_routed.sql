-- Whether an audit row has been routed into the notification outbox. A row is written
-- unrouted in the transaction of the change it records; routing writes its notifications and
-- marks it routed in one transaction, so a process killed in between loses no notification
-- (the next routing pass takes the row). Rows from before this migration were routed as they
-- were emitted. Numbered apart from the other tables' migrations so concurrent work cannot
-- collide.
ALTER TABLE audit ADD COLUMN routed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX audit_unrouted ON audit (id) WHERE routed = 0;
