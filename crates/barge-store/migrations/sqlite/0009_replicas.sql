-- The `barge serve` processes sharing this database: each writes its heartbeat (database
-- time, Unix milliseconds) every third of a lease, so `barge get replicas` shows who is alive.
CREATE TABLE replicas (
    id           TEXT   NOT NULL PRIMARY KEY,
    host         TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Who discovers each Warehouse: one replica takes the lease when the Warehouse is due (its
-- schedule's next pass, or a refresh asked for since the last pass started), and sets the
-- next due time when its pass ends. All times are the database's (Unix milliseconds).
CREATE TABLE discovery_leases (
    project      TEXT   NOT NULL,
    warehouse    TEXT   NOT NULL,
    owner        TEXT   NOT NULL DEFAULT '',
    lease_until  BIGINT NOT NULL DEFAULT 0,
    due_at       BIGINT NOT NULL DEFAULT 0,
    requested_at BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project, warehouse)
);
