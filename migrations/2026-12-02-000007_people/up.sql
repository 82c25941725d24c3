-- People as the school knows them: a display name in any script, an optional
-- school number, and accounts that staff create and invite (no password
-- until the invitation is accepted).

ALTER TABLE users ADD COLUMN display_name TEXT;
UPDATE users SET display_name = username;
ALTER TABLE users
    ALTER COLUMN display_name SET NOT NULL,
    ADD CONSTRAINT users_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 100),
    ADD COLUMN number TEXT CHECK (number IS NULL OR char_length(number) BETWEEN 1 AND 32),
    ALTER COLUMN password_hash DROP NOT NULL;

-- A school number is unique whatever its case, when set.
CREATE UNIQUE INDEX users_number_lower_key ON users (lower(number)) WHERE number IS NOT NULL;

-- Invitations are password-setting tokens like resets, told apart by purpose,
-- so one kind is never accepted as the other.
ALTER TABLE password_resets
    ADD COLUMN purpose TEXT NOT NULL DEFAULT 'reset' CHECK (purpose IN ('reset', 'invitation'));
