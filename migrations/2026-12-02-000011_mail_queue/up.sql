-- Every mail classbell sends, from the transaction that caused it until the
-- relay accepts it: a restart loses none. A mail's text is kept only until
-- it is sent (it may hold a one-time link); the row stays a while after, as
-- a record, and failed mails stay for an admin to look at and re-send.
CREATE TABLE mail_queue (
    id BIGSERIAL PRIMARY KEY,
    -- The Message-ID header, the same on every attempt: a relay or reader
    -- can tell a repeat from a new mail.
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The whole RFC 5322 message; emptied once sent.
    message BYTEA NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- While `sending`: until when the node that took it may keep it. A node
    -- that dies mid-send leaves the row to be taken again after this.
    lease_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ
);

CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at) WHERE state IN ('queued', 'sending');
CREATE INDEX mail_queue_failed ON mail_queue (created_at DESC) WHERE state = 'failed';
CREATE INDEX mail_queue_sent ON mail_queue (sent_at) WHERE state = 'sent';
