-- The school's catalogue: courses, their sections each term, who is enrolled,
-- and the files attached to each course (bytes live in object storage).

CREATE TABLE courses (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        TEXT         NOT NULL CHECK (char_length(code) BETWEEN 1 AND 32 AND code = btrim(code)),
    title       TEXT         NOT NULL CHECK (char_length(title) BETWEEN 1 AND 128),
    description TEXT         NOT NULL DEFAULT '',
    credits     NUMERIC(4,1) NOT NULL DEFAULT 3.0 CHECK (credits BETWEEN 0 AND 99.9),
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX courses_code_lower_key ON courses (lower(code));

CREATE TABLE sections (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id    BIGINT      NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    section_code TEXT        NOT NULL CHECK (char_length(section_code) BETWEEN 1 AND 32),
    term         TEXT        NOT NULL CHECK (char_length(term) BETWEEN 1 AND 32),
    teacher_id   BIGINT      NOT NULL REFERENCES users (id),
    capacity     INTEGER     NOT NULL DEFAULT 50 CHECK (capacity BETWEEN 1 AND 1000),
    status       TEXT        NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sections_course_term_code_key ON sections (course_id, lower(term), lower(section_code));
CREATE INDEX sections_teacher_idx ON sections (teacher_id);

-- The primary key (section, student) both forbids duplicates and counts a
-- section's enrollments for the capacity check.
CREATE TABLE enrollments (
    section_id  BIGINT      NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    student_id  BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (section_id, student_id)
);
CREATE INDEX enrollments_student_idx ON enrollments (student_id);

CREATE TABLE course_attachments (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id    BIGINT      NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    title        TEXT        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    filename     TEXT        NOT NULL CHECK (char_length(filename) BETWEEN 1 AND 255),
    object_key   TEXT        NOT NULL UNIQUE,
    size         BIGINT      NOT NULL CHECK (size >= 0),
    content_type TEXT        NOT NULL,
    uploaded_by  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX course_attachments_course_idx ON course_attachments (course_id);

-- Stored objects whose rows are gone (a course or attachment was deleted).
-- Written in the same transaction as the delete, removed once the bytes are,
-- so bytes are never lost track of even while object storage is down.
CREATE TABLE object_deletions (
    object_key  TEXT        PRIMARY KEY,
    queued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts    INTEGER     NOT NULL DEFAULT 0
);

-- Queue every attachment's object when its row goes, whatever deleted it
-- (the attachment itself, or its course by cascade).
CREATE FUNCTION queue_attachment_object_deletion() RETURNS trigger AS $$
BEGIN
    INSERT INTO object_deletions (object_key) VALUES (OLD.object_key)
    ON CONFLICT (object_key) DO NOTHING;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER course_attachments_queue_object_deletion
    AFTER DELETE ON course_attachments
    FOR EACH ROW EXECUTE FUNCTION queue_attachment_object_deletion();
