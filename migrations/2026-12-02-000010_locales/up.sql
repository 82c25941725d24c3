-- Each person's language; NULL until they (or staff) choose one, and then
-- their browser's language and the school's default decide.
ALTER TABLE users ADD COLUMN locale TEXT CHECK (locale IN ('en', 'zh-CN'));
