-- Where each inbox change sits in commit order, so a websocket client that
-- reconnects can ask for "everything since my cursor" and miss nothing.
--
-- A cursor is a transaction id (xid8, as bigint) taken as the xmin of a
-- snapshot: every transaction below it had finished when it was taken. Rows
-- record the id of the transaction that created or last changed them; the
-- changes a client has not seen are those at or above its cursor. Sequence
-- numbers would not do: they are handed out in start order, not commit order.

ALTER TABLE deliveries
    ADD COLUMN created_tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    ADD COLUMN changed_tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);

ALTER TABLE announcements ADD COLUMN withdrawn_tx BIGINT;
