DROP TABLE escalation_steps;
ALTER TABLE announcements
    DROP CONSTRAINT announcements_due_before_expiry,
    DROP COLUMN escalation,
    DROP COLUMN expires_at,
    DROP COLUMN ack_due_at;
