-- Verification runs: an analysis of the Freight a Stage received, run after a successful
-- promotion (Kargo's AnalysisRun for the Stage). Leased like promotions, so a replica that
-- dies mid-run hands it over; the report (every metric's counters and latest measurements)
-- is kept as JSON and updated as measurements land. Times are Unix milliseconds.
CREATE TABLE verifications (
    project     TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    stage       TEXT   NOT NULL,
    freight     TEXT   NOT NULL,
    -- Pending, Running, then Succeeded, Failed, Error, Inconclusive or Aborted.
    phase       TEXT   NOT NULL,
    message     TEXT   NOT NULL DEFAULT '',
    report      TEXT   NOT NULL DEFAULT '{}',
    actor       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT,
    owner       TEXT   NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project, id)
);
CREATE INDEX verifications_by_stage ON verifications (project, stage, created_at);
CREATE UNIQUE INDEX one_unfinished_verification_per_stage ON verifications (project, stage)
    WHERE phase IN ('Pending', 'Running');
