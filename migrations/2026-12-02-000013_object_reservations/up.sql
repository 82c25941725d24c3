-- An upload queues its object for deletion *before* its bytes are stored,
-- due once the upload can no longer be running; the row that comes to own
-- the object takes it off the queue. A node killed between storing the
-- bytes and writing the row so leaves no orphan: the sweeper removes the
-- object when the entry falls due and nothing refers to the key.
ALTER TABLE object_deletions ADD COLUMN due_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX object_deletions_due_idx ON object_deletions (due_at);

-- Every object key a row owns: the sweeper never deletes one of these,
-- whatever its queue says. A new kind of stored file is added here.
CREATE VIEW stored_objects AS
    SELECT object_key FROM course_attachments
    UNION ALL SELECT input_key FROM jobs WHERE input_key IS NOT NULL
    UNION ALL SELECT output_key FROM jobs WHERE output_key IS NOT NULL;
CREATE INDEX jobs_input_key_idx ON jobs (input_key) WHERE input_key IS NOT NULL;
CREATE INDEX jobs_output_key_idx ON jobs (output_key) WHERE output_key IS NOT NULL;
