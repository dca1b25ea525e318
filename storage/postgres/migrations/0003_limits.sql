-- 0003: bot-wide totals per period (spending, starting grants) and once-only claims (owner alerts).
-- A counter row is moved in the same transaction as the reservation or grant it counts, so a
-- limit checked with "value + amount <= limit" holds under any concurrency (the row lock).

CREATE TABLE counters (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL DEFAULT 0 CHECK (value >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE claims (
    key TEXT PRIMARY KEY,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
