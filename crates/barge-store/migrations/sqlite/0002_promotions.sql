-- Promotions: the plan inflated when the promotion was created (steps, vars, freight), and
-- the durable run state (per-step records and outputs) saved after every step.
CREATE TABLE promotions (
    project    TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    stage      TEXT   NOT NULL,
    freight    TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    phase      TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    plan       TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, name)
);
CREATE INDEX promotions_by_stage ON promotions (project, stage, created_at);
