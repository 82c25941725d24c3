-- Deadlines: acknowledge by `ack_due_at`; after `expires_at` the
-- announcement no longer matters (it leaves the unread count). `escalation`
-- is the announcement's own ladder (`in_app@24h,mail@2h,summary@0s`), NULL
-- for the school's.
ALTER TABLE announcements
    ADD COLUMN ack_due_at TIMESTAMPTZ,
    ADD COLUMN expires_at TIMESTAMPTZ,
    ADD COLUMN escalation TEXT,
    ADD CONSTRAINT announcements_due_before_expiry
        CHECK (ack_due_at IS NULL OR expires_at IS NULL OR ack_due_at <= expires_at);

-- The ladder's steps, one row each: the durable schedule every node reads.
-- A step runs in the transaction that marks it done, so it runs once
-- whatever the nodes do; manual reminders are recorded here too, so the
-- history is one list.
CREATE TABLE escalation_steps (
    id BIGSERIAL PRIMARY KEY,
    announcement_id BIGINT NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('in_app', 'mail', 'summary', 'manual')),
    -- Before the due time; NULL for manual reminders.
    offset_secs BIGINT,
    -- When the ladder puts it; `run_at` moves past quiet hours.
    planned_at TIMESTAMPTZ NOT NULL,
    run_at TIMESTAMPTZ NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'done', 'skipped', 'cancelled')),
    ran_at TIMESTAMPTZ,
    -- Whom it reached: recipients reminded, or (a summary) those missing.
    reached INT
);

CREATE UNIQUE INDEX escalation_steps_once
    ON escalation_steps (announcement_id, channel, offset_secs) WHERE channel <> 'manual';
CREATE INDEX escalation_steps_due ON escalation_steps (run_at) WHERE state = 'pending';
CREATE INDEX escalation_steps_of ON escalation_steps (announcement_id, planned_at);
