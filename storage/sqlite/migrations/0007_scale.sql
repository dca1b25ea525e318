-- 0003: several processes. Each running process has a row with a heartbeat lease; open
-- reservations and image jobs name the process that owns them. The writer connection stamps new
-- rows with its process id (temporary triggers, see storage.leases); rows from before have none
-- and count as orphans, taken over by the next process that starts.

CREATE TABLE processes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

ALTER TABLE reservations ADD COLUMN owner TEXT;
ALTER TABLE image_jobs ADD COLUMN owner TEXT;

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
