-- 0003: who may use the bot, changed at run time (/allow, /block, /unblock), and what community
-- admins switched per channel (/disable, /enable, /replyall). Both override the settings.

CREATE TABLE access_rules (
    kind TEXT NOT NULL CHECK (kind IN ('user', 'chat', 'role')),
    subject TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('allow', 'block', 'unblock')),
    set_by TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject)
);

CREATE TABLE channel_switches (
    platform TEXT NOT NULL,
    scope TEXT NOT NULL,
    channel TEXT NOT NULL,
    chat_off BOOLEAN NOT NULL DEFAULT FALSE,
    images_off BOOLEAN NOT NULL DEFAULT FALSE,
    reply_all BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, scope, channel)
);
