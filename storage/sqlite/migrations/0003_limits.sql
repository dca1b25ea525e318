-- 0003: bot-wide totals per period (spending, starting grants) and once-only claims (owner alerts).
-- A counter row is moved in the same transaction as the reservation or grant it counts, so a
-- limit checked with "value + amount <= limit" holds under any concurrency.

CREATE TABLE counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL DEFAULT 0 CHECK (value >= 0),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE claims (
    key TEXT PRIMARY KEY,
    claimed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
