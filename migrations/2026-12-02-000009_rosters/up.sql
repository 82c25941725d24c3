-- Rosters: the school's people imported and exported as CSV, and the
-- invitations a roster import owes its new accounts, mailed from a queue at
-- a bounded rate (a roster of thousands must not flood the relay).

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN (
    'export_courses', 'export_sections', 'export_enrollments', 'export_unacked', 'export_users',
    'import_courses', 'import_sections', 'import_enrollments', 'import_users'));

-- Accounts waiting for their invitation mail. The token is made when the
-- mail goes out, so no usable secret is ever stored.
CREATE TABLE invitations_due (
    user_id    BIGINT      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    queued_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX invitations_due_queued_idx ON invitations_due (queued_at);
