ALTER TABLE password_resets DROP COLUMN purpose;
DROP INDEX users_number_lower_key;
UPDATE users SET password_hash = '' WHERE password_hash IS NULL;
ALTER TABLE users
    ALTER COLUMN password_hash SET NOT NULL,
    DROP COLUMN number,
    DROP COLUMN display_name;
