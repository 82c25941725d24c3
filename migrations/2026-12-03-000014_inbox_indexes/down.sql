DROP INDEX announcements_withdrawn_idx;
CREATE INDEX deliveries_user_state_idx ON deliveries (user_id, state);
DROP INDEX deliveries_user_changed_idx;
DROP INDEX deliveries_user_unread_idx;
DROP INDEX deliveries_user_kept_idx;
