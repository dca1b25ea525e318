-- 0003: several processes. Each running process has a row with a heartbeat lease; open
-- reservations and image jobs name the process that owns them. A new row takes its owner from the
-- connection's setting minitoolai.process_id (set by storage.postgres for every pooled
-- connection); rows from before have none and count as orphans, taken over by the next process.

CREATE TABLE processes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE reservations ADD COLUMN owner TEXT;
ALTER TABLE reservations ALTER COLUMN owner
    SET DEFAULT NULLIF(current_setting('minitoolai.process_id', true), '');
ALTER TABLE image_jobs ADD COLUMN owner TEXT;
ALTER TABLE image_jobs ALTER COLUMN owner
    SET DEFAULT NULLIF(current_setting('minitoolai.process_id', true), '');

CREATE INDEX reservations_open_owner ON reservations (owner) WHERE state = 'open';
CREATE INDEX image_jobs_unfinished_owner ON image_jobs (owner) WHERE state IN ('queued', 'submitted');

-- Work done by one process for all (registering the Telegram webhook): the role's holder, valid
-- while the holder's lease lives; then the next process to ask takes it.
CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);

-- One answer at a time per conversation across processes: the process writing one holds its row
-- (valid while that process's lease lives) and deletes it when the answer is stored.
CREATE TABLE answers (
    platform TEXT NOT NULL,
    scope TEXT NOT NULL,
    channel TEXT NOT NULL,
    owner TEXT NOT NULL,
    process TEXT NOT NULL,
    PRIMARY KEY (platform, scope, channel, owner)
);
