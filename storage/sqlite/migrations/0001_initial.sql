-- 0001: the core tables. Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; money is integer micro-dollars.

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL,
    scope TEXT NOT NULL,
    channel TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    UNIQUE (platform, scope, channel, owner)
);

CREATE TABLE turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL CHECK (tokens >= 0),
    author_id TEXT NOT NULL DEFAULT '',
    message_ids TEXT NOT NULL DEFAULT '[]',
    image_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE turn_images (
    turn_id INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    mime TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (turn_id, position)
);

CREATE TABLE settings (
    platform TEXT NOT NULL,
    scope TEXT NOT NULL,
    channel TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (platform, scope, channel)
);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    platform TEXT NOT NULL,
    holder TEXT NOT NULL,
    balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (platform, holder)
);

CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL,
    holder TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL UNIQUE,
    reservation_id TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    FOREIGN KEY (platform, holder) REFERENCES accounts (platform, holder)
);

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    holder TEXT NOT NULL,
    spender_platform TEXT,
    spender_holder TEXT,
    amount INTEGER NOT NULL CHECK (amount >= 0),
    purpose TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled', 'released')),
    charged INTEGER,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    closed_at TEXT,
    FOREIGN KEY (platform, holder) REFERENCES accounts (platform, holder)
);

CREATE TABLE image_jobs (
    id TEXT PRIMARY KEY,
    requester_platform TEXT NOT NULL,
    requester_holder TEXT NOT NULL,
    platform TEXT NOT NULL,
    scope TEXT NOT NULL,
    channel TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'queued',
    reservation_id TEXT,
    jobid TEXT,
    signature TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cost INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT,
    result_message TEXT,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
