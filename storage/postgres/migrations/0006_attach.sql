-- 0003: pictures are stored once by content hash and referenced from turns; the old per-turn
-- BLOBs move over (their key is "legacy:<turn>:<position>", a unique name rather than a hash: the
-- bytes are not rehashed here; their size is unknown, so they are counted at the most a picture can cost).
-- turn_pictures.digest has no foreign key on purpose: a picture another conversation's pruning
-- removed a moment before is read as "no longer kept" (a placeholder), never as an error.

CREATE TABLE pictures (
    digest TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    data BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE turn_pictures (
    turn_id BIGINT NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (turn_id, position)
);
CREATE INDEX turn_pictures_digest ON turn_pictures (digest);

INSERT INTO pictures (digest, mime, size, data)
SELECT 'legacy:' || turn_id || ':' || position, mime, length(data), data FROM turn_images;
INSERT INTO turn_pictures (turn_id, position, digest)
SELECT turn_id, position, 'legacy:' || turn_id || ':' || position FROM turn_images;
DROP TABLE turn_images;
