-- The update trigger joined its two transition tables on id. PostgreSQL
-- estimates a transition table at one row, so the join ran as a nested loop:
-- quadratic in the rows one statement updates (a batch of 300
-- acknowledgments spent 24 ms here, more than in the update itself; a
-- statement over a whole school's deliveries would never finish). Counting
-- each side by state needs no join: every row counts -1 in its old state and
-- +1 in its new one, so a row whose state stayed the same cancels out.
CREATE OR REPLACE FUNCTION count_updated_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_counts AS c (state, slot, n)
    SELECT state, pg_backend_pid() % 16, sum(change) FROM (
        SELECT state, -count(*) AS change FROM before_rows GROUP BY state
        UNION ALL
        SELECT state, count(*) FROM after_rows GROUP BY state
    ) moved GROUP BY state
    HAVING sum(change) <> 0
    ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
