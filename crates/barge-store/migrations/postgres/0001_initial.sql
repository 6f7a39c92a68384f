-- (PostgreSQL flavour of migrations/sqlite/0001_initial.sql: identity instead of autoincrement.)
-- Freight: immutable content, named by its Kargo-compatible ID; the alias is unique per project.
CREATE TABLE freight (
    project     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    alias       TEXT    NOT NULL,
    warehouse   TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (project, name),
    UNIQUE (project, alias)
);
CREATE INDEX freight_by_warehouse ON freight (project, warehouse, created_at);

-- The last discovery pass of each Warehouse (what it saw, refs it observed, its error).
CREATE TABLE discovery_status (
    project     TEXT    NOT NULL,
    warehouse   TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (project, warehouse)
);

-- Append-only audit log.
CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT  NOT NULL,
    project     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    body        TEXT    NOT NULL
);
CREATE INDEX audit_by_project ON audit (project, at);
