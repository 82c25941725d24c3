-- Announcements and the deliveries they fan out into.

CREATE TABLE announcements (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title               TEXT        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body                TEXT        NOT NULL CHECK (char_length(body) BETWEEN 1 AND 20000),
    audience_kind       TEXT        NOT NULL CHECK (audience_kind IN ('all_students', 'course', 'section')),
    audience_id         BIGINT      CHECK ((audience_kind = 'all_students') = (audience_id IS NULL)),
    publisher_id        BIGINT      NOT NULL REFERENCES users (id),
    status              TEXT        NOT NULL CHECK (status IN ('draft', 'scheduled', 'published', 'withdrawn')),
    publish_at          TIMESTAMPTZ,
    published_at        TIMESTAMPTZ,
    withdrawn_at        TIMESTAMPTZ,
    -- Fan-out progress: how many recipients, how many deliveries written, the
    -- last user id covered (chunks go in user-id order), and when it ended.
    fanout_target       INTEGER,
    fanout_done         INTEGER     NOT NULL DEFAULT 0,
    fanout_cursor       BIGINT      NOT NULL DEFAULT 0,
    fanout_finished_at  TIMESTAMPTZ,
    -- Which node works on it, until when; a lapsed lease can be claimed again.
    fanout_owner        UUID,
    fanout_lease_until  TIMESTAMPTZ,
    fanout_attempts     INTEGER     NOT NULL DEFAULT 0,
    fanout_retry_at     TIMESTAMPTZ,
    fanout_error        TEXT,
    last_reminded_at    TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX announcements_publisher_idx ON announcements (publisher_id, id DESC);
CREATE INDEX announcements_fanout_pending_idx ON announcements (id)
    WHERE status = 'published' AND fanout_finished_at IS NULL;
CREATE INDEX announcements_scheduled_idx ON announcements (publish_at) WHERE status = 'scheduled';

-- One row per recipient. No foreign keys: the per-row checks would cost more
-- than the rest of the fan-out together. Announcements are withdrawn, never
-- deleted, and users are deactivated, never deleted.
CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    announcement_id  BIGINT      NOT NULL,
    user_id          BIGINT      NOT NULL,
    state            TEXT        NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'delivered', 'acknowledged')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ,
    ack_at           TIMESTAMPTZ,
    last_push_at     TIMESTAMPTZ,
    retry_count      INTEGER     NOT NULL DEFAULT 0,
    UNIQUE (announcement_id, user_id)
);
CREATE INDEX deliveries_user_state_idx ON deliveries (user_id, state);
CREATE INDEX deliveries_announcement_state_idx ON deliveries (announcement_id, state);
