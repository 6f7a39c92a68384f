-- Who approved which Freight for which Stage (issues #16, #20): a Stage's approval policy and
-- the wait-for-approval step count distinct approvers. One row per approver, so approving
-- twice counts once (the first approval's time is kept). `role` is the approver's role when
-- it approved (viewer, promoter, admin); times are Unix milliseconds.
CREATE TABLE freight_approvals (
    project     TEXT   NOT NULL,
    freight     TEXT   NOT NULL,
    stage       TEXT   NOT NULL,
    approver    TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (project, freight, stage, approver)
);
