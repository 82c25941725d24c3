ALTER TABLE announcements DROP COLUMN withdrawn_tx;
ALTER TABLE deliveries DROP COLUMN changed_tx, DROP COLUMN created_tx;
