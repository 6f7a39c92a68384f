-- The notification outbox: each row a message for one channel, written when the event it
-- reports is emitted and sent by `barge serve`'s delivery task (at least once). The message
-- names its channel; the channel's URL and secrets are resolved when it is sent and never
-- stored. Numbered apart from the other tables' migrations so concurrent work cannot collide.
CREATE TABLE notifications (
    id              TEXT   NOT NULL PRIMARY KEY,
    project         TEXT   NOT NULL,
    -- '' when the event concerns no Stage.
    stage           TEXT   NOT NULL DEFAULT '',
    -- The event type (PromotionSucceeded, ...), or 'send-message' for the step's.
    event           TEXT   NOT NULL,
    router          TEXT   NOT NULL DEFAULT '',
    channel_kind    TEXT   NOT NULL,
    channel         TEXT   NOT NULL,
    -- barge_core::notify::Message as JSON.
    message         TEXT   NOT NULL,
    -- pending, delivered or failed.
    state           TEXT   NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT   NOT NULL DEFAULT '',
    next_attempt_at BIGINT NOT NULL,
    -- The replica sending it, until lease_until.
    owner           TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
CREATE INDEX notifications_project ON notifications (project, created_at);
