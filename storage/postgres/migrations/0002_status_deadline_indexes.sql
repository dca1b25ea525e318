-- 0002: a turn remembers how it ended; image jobs get a deadline; the indexes the queries need.
-- Existing turns become 'complete' and existing jobs have no deadline, so old rows survive.

ALTER TABLE turns ADD COLUMN status TEXT NOT NULL DEFAULT 'complete'
    CHECK (status IN ('complete', 'stopped', 'interrupted'));
ALTER TABLE image_jobs ADD COLUMN deadline_at TIMESTAMPTZ;

-- load_context sums token counts newest first from this index alone, then reads only what fits.
CREATE INDEX turns_conversation_newest ON turns (conversation_id, id DESC, tokens);
CREATE INDEX turns_created_at ON turns (created_at);
CREATE INDEX ledger_account_newest ON ledger (platform, holder, id DESC);
CREATE INDEX reservations_open ON reservations (state, created_at);
CREATE INDEX reservations_account_closed ON reservations (platform, holder, state, closed_at);
CREATE INDEX image_jobs_state ON image_jobs (state, created_at);
