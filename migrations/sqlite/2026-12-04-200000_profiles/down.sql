ALTER TABLE users DROP COLUMN about;
ALTER TABLE users DROP COLUMN affiliation;
