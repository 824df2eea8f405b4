DROP TRIGGER user_blocks_acl_del;
DROP TRIGGER user_blocks_acl_ins;
DROP TRIGGER share_follows_acl_del;
DROP TRIGGER share_follows_acl_ins;
DROP TABLE acl_applied;
DROP TABLE user_blocks;
DROP TABLE share_follows;
ALTER TABLE shares DROP COLUMN onward;
