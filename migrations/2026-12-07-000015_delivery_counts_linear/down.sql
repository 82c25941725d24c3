-- The join of the two transition tables, as before.
CREATE OR REPLACE FUNCTION count_updated_deliveries() RETURNS trigger AS $$
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
