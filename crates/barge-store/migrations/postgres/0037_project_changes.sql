-- A counter per project, raised in the same transaction as every write that changes what a
-- Stage's status is decided from (Freight, Freight/Stage facts, approvals, holds, promotions,
-- verifications), as that transaction's last statement. Readers that keep a project's decided
-- state between requests (the daemon's Stage snapshots) compare it to the counter they read
-- it under: one indexed row instead of re-reading 10,000 Freight per request, and it sees the
-- writes of other processes and replicas as well as their own.
CREATE TABLE project_changes (
    project TEXT   NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
