-- Which Freight is, or was, in which Stage: the facts availability is decided from
-- (Kargo's Freight status currentlyIn / verifiedIn / approvedFor). One row per pair; times
-- are Unix milliseconds.
CREATE TABLE freight_stages (
    project      TEXT   NOT NULL,
    freight      TEXT   NOT NULL,
    stage        TEXT   NOT NULL,
    warehouse    TEXT   NOT NULL,
    -- The latest time it entered the stage (NULL: never in it, e.g. only approved).
    entered_at   BIGINT,
    -- When it last left (NULL while it is there).
    left_at      BIGINT,
    -- The longest stay that has ended, in milliseconds.
    longest_soak BIGINT NOT NULL DEFAULT 0,
    verified_at  BIGINT,
    -- The verification outcome of its latest stay: '', Running, Succeeded, Failed, Error.
    verification TEXT   NOT NULL DEFAULT '',
    approved_at  BIGINT,
    approved_by  TEXT,
    PRIMARY KEY (project, freight, stage)
);
CREATE INDEX freight_stages_by_stage ON freight_stages (project, stage, warehouse);

-- Auto-promotion holds: a person promoted Freight other than the candidate, so
-- auto-promotion leaves that origin alone until released.
CREATE TABLE stage_holds (
    project    TEXT   NOT NULL,
    stage      TEXT   NOT NULL,
    warehouse  TEXT   NOT NULL,
    freight    TEXT   NOT NULL,
    promotion  TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project, stage, warehouse)
);

-- The history can be filtered by stage and by freight without reading bodies.
ALTER TABLE audit ADD COLUMN stage TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN freight TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_by_at ON audit (at, id);
CREATE INDEX audit_by_stage ON audit (stage, at, id);
CREATE INDEX audit_by_freight ON audit (freight, at, id);

-- The definitions `barge serve` runs (each loaded file's text), newest last: what the
-- CLI's verbs read when they are not given paths, and a record of every reload.
CREATE TABLE definitions (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    loaded_at BIGINT NOT NULL,
    source    TEXT   NOT NULL,
    texts     TEXT   NOT NULL
);

-- Which barge process runs a promotion, and until when its claim holds: a replica that dies
-- mid-promotion stops renewing, and another resumes the promotion once the lease ends.
ALTER TABLE promotions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE promotions ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX promotions_by_phase ON promotions (phase, created_at);

-- One unfinished promotion per Stage, enforced by the database: replicas sharing a
-- PostgreSQL store may reconcile the same Stage at the same moment.
CREATE UNIQUE INDEX one_unfinished_promotion_per_stage ON promotions (project, stage)
    WHERE phase IN ('Pending', 'Running');
