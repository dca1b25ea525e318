-- 0003: who may use the bot, changed at run time (/allow, /block, /unblock), and what community
-- admins switched per channel (/disable, /enable, /replyall). Both override the settings.

CREATE TABLE access_rules (
    kind TEXT NOT NULL CHECK (kind IN ('user', 'chat', 'role')),
    subject TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('allow', 'block', 'unblock')),
    set_by TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (kind, subject)
);

CREATE TABLE channel_switches (
    platform TEXT NOT NULL,
    scope TEXT NOT NULL,
    channel TEXT NOT NULL,
    chat_off INTEGER NOT NULL DEFAULT 0 CHECK (chat_off IN (0, 1)),
    images_off INTEGER NOT NULL DEFAULT 0 CHECK (images_off IN (0, 1)),
    reply_all INTEGER NOT NULL DEFAULT 0 CHECK (reply_all IN (0, 1)),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (platform, scope, channel)
);
