DROP TRIGGER course_attachments_queue_object_deletion ON course_attachments;
DROP FUNCTION queue_attachment_object_deletion();
DROP TABLE object_deletions;
DROP TABLE course_attachments;
DROP TABLE enrollments;
DROP TABLE sections;
DROP TABLE courses;
