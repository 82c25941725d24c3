-- Audiences follow enrollment: a student who leaves a section has the
-- unacknowledged deliveries that reached them only through it retracted.
-- The row stays, for the record; a retracted delivery is not live (no inbox,
-- badge, count or reminder), and a re-enrollment brings it back.
ALTER TABLE deliveries ADD COLUMN retracted_at TIMESTAMPTZ;

-- Late joiners are matched against the published announcements addressed
-- to a section, a course or everyone.
CREATE INDEX announcements_published_audience_idx ON announcements (audience_kind, audience_id)
    WHERE status = 'published';
