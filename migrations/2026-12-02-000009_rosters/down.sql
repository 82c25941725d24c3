DROP TABLE invitations_due;
DELETE FROM jobs WHERE kind IN ('export_users', 'import_users');
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN (
    'export_courses', 'export_sections', 'export_enrollments', 'export_unacked',
    'import_courses', 'import_sections', 'import_enrollments'));
