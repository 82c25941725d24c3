DROP INDEX jobs_output_key_idx;
DROP INDEX jobs_input_key_idx;
DROP VIEW stored_objects;
DROP INDEX object_deletions_due_idx;
ALTER TABLE object_deletions DROP COLUMN due_at;
