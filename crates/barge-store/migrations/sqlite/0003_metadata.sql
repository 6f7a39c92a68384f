-- Metadata that promotion steps attach to Stages and Freight (set-metadata), read back by
-- stageMetadata() / freightMetadata() in later promotions.
CREATE TABLE metadata (
    project    TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, kind, name)
);
