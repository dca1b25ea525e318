-- 0003: Telegram Stars payments. One row per telegram_payment_charge_id (the primary key), so a
-- payment delivered twice is stored, and credited, once; the credit and any refund are ledger
-- entries written in the same transaction as the row.

CREATE TABLE star_payments (
    charge_id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    holder TEXT NOT NULL,
    stars INTEGER NOT NULL CHECK (stars > 0),
    credit INTEGER NOT NULL CHECK (credit >= 0),
    provider_charge_id TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    paid_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    confirmed_at TEXT,
    refund_state TEXT NOT NULL DEFAULT 'none' CHECK (refund_state IN ('none', 'pending', 'refunded')),
    refund_taken INTEGER NOT NULL DEFAULT 0 CHECK (refund_taken >= 0),
    refund_attempts INTEGER NOT NULL DEFAULT 0,
    refunded_at TEXT,
    FOREIGN KEY (platform, holder) REFERENCES accounts (platform, holder)
);

CREATE INDEX star_payments_member ON star_payments (platform, holder, paid_at);
