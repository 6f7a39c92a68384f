-- What image discovery learned of a subscription (its tag list's ETag and hash, candidates,
-- tag digests), keyed by the subscription's fingerprint (a SHA-256 of its configuration), so
-- a pass whose tag list has not changed sends no HEADs. A cache: losing a row costs requests.
CREATE TABLE image_memory (
    fingerprint TEXT   NOT NULL PRIMARY KEY,
    body        TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);
