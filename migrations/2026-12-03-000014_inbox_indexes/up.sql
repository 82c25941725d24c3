-- A student's inbox grows all year; what a page load, a badge or a
-- reconnect reads must cost what it returns, not what the inbox holds.
-- (user_id, state) made each of them walk every delivery the student ever
-- had, so they slowed as inboxes filled.

-- The inbox page (newest first) and its total: an index-only walk of the
-- deliveries a student still has.
CREATE INDEX deliveries_user_kept_idx ON deliveries (user_id, id) WHERE retracted_at IS NULL;
-- Badges and unread counts: only what is still unread.
CREATE INDEX deliveries_user_unread_idx ON deliveries (user_id)
    WHERE state <> 'acknowledged' AND retracted_at IS NULL;
-- A reconnect's replay from its cursor, and every other read by student.
CREATE INDEX deliveries_user_changed_idx ON deliveries (user_id, changed_tx);
DROP INDEX deliveries_user_state_idx;

-- Withdrawals since a cursor, and the few withdrawn announcements an inbox
-- total leaves out.
CREATE INDEX announcements_withdrawn_idx ON announcements (withdrawn_tx) WHERE status = 'withdrawn';
