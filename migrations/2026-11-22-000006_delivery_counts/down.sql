DROP TRIGGER deliveries_count_truncates ON deliveries;
DROP TRIGGER deliveries_count_deletes ON deliveries;
DROP TRIGGER deliveries_count_updates ON deliveries;
DROP TRIGGER deliveries_count_inserts ON deliveries;
DROP FUNCTION count_truncated_deliveries();
DROP FUNCTION count_deleted_deliveries();
DROP FUNCTION count_updated_deliveries();
DROP FUNCTION count_inserted_deliveries();
DROP TABLE delivery_counts;
