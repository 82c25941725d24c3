DROP INDEX announcements_published_audience_idx;
ALTER TABLE deliveries DROP COLUMN retracted_at;
