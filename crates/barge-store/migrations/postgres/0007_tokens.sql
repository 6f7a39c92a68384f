-- The API's tokens (`barge token create`): who holds each and what it may do. Only the
-- SHA-256 of a token is kept (hex): a token is 256 random bits, so its hash is as good a
-- lookup key as it is useless to whoever reads the database.
CREATE TABLE tokens (
    name         TEXT   NOT NULL PRIMARY KEY,
    hash         TEXT   NOT NULL UNIQUE,
    role         TEXT   NOT NULL,
    -- '' for every project.
    project      TEXT   NOT NULL DEFAULT '',
    -- A JSON array of Stage names; NULL for every Stage.
    stages       TEXT,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
