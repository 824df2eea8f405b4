ALTER TABLE tokens DROP COLUMN last_used_at;
DROP INDEX groups_name_nocase;
DROP INDEX users_email_nocase;
DROP INDEX users_name_nocase;
DROP TABLE acl_applied;
DROP TABLE user_blocks;
DROP TABLE share_follows;
ALTER TABLE shares DROP COLUMN onward;
