-- A researcher's profile, shown to other users: where they work and a few words about
-- what they run. Both may stay empty.
ALTER TABLE users ADD COLUMN affiliation TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN about TEXT NOT NULL DEFAULT '';
