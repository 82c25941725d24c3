-- Deliveries by state, kept current by the statements that change them, so
-- /metrics reads a few dozen rows instead of counting the table. Each
-- statement adds its own totals (one row per state it touched), spread over
-- 16 slots by backend so concurrent writers seldom wait on the same row.

CREATE TABLE delivery_counts (
    state TEXT     NOT NULL,
    slot  SMALLINT NOT NULL,
    n     BIGINT   NOT NULL DEFAULT 0,
    PRIMARY KEY (state, slot)
);

INSERT INTO delivery_counts (state, slot, n)
SELECT state, 0, count(*) FROM deliveries GROUP BY state;

CREATE FUNCTION count_inserted_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_counts AS c (state, slot, n)
    SELECT state, pg_backend_pid() % 16, count(*) FROM inserted GROUP BY state
    ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION count_updated_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_counts AS c (state, slot, n)
    SELECT state, pg_backend_pid() % 16, sum(change) FROM (
        SELECT o.state, -1 AS change FROM before_rows o JOIN after_rows a ON a.id = o.id
        WHERE a.state <> o.state
        UNION ALL
        SELECT a.state, 1 FROM before_rows o JOIN after_rows a ON a.id = o.id
        WHERE a.state <> o.state
    ) moved GROUP BY state
    ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION count_deleted_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_counts AS c (state, slot, n)
    SELECT state, pg_backend_pid() % 16, -count(*) FROM deleted GROUP BY state
    ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION count_truncated_deliveries() RETURNS trigger AS $$
BEGIN
    DELETE FROM delivery_counts;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER deliveries_count_inserts AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_deliveries();
CREATE TRIGGER deliveries_count_updates AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_updated_deliveries();
CREATE TRIGGER deliveries_count_deletes AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_deliveries();
CREATE TRIGGER deliveries_count_truncates AFTER TRUNCATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_deliveries();
