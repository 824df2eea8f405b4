-- The change log the running servers read (instead of reloading the whole graph): every
-- change that can alter an ACL appends what it touched, in the writing transaction, by
-- trigger, whoever writes (the website, the CLI, another node). A server applies the rows
-- after the id it applied last, re-reading just those users, keys, shares, memberships,
-- follows and blocks. The highest id is the ACL version. Rows every live server applied are
-- pruned after an hour; `pruned_through` tells a server that fell further behind to reload.
CREATE TABLE graph_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'key', 'share', 'member', 'follow', 'block')),
    a BIGINT NOT NULL,
    b BIGINT NOT NULL DEFAULT 0,
    at BIGINT NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
CREATE INDEX graph_changes_at ON graph_changes(at);

CREATE TABLE graph_log (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT NOT NULL
);
-- The version counted on from the old counter, so that no applied record runs ahead of it.
INSERT INTO graph_log (id, pruned_through) SELECT 1, version FROM acl_version;
INSERT INTO sqlite_sequence (name, seq) SELECT 'graph_changes', version FROM acl_version;

DROP TRIGGER users_acl_upd;
DROP TRIGGER users_acl_del;
DROP TRIGGER authkeys_acl_ins;
DROP TRIGGER authkeys_acl_upd;
DROP TRIGGER authkeys_acl_del;
DROP TRIGGER authkey_channels_acl_ins;
DROP TRIGGER authkey_channels_acl_upd;
DROP TRIGGER authkey_channels_acl_del;
DROP TRIGGER shares_acl_ins;
DROP TRIGGER shares_acl_upd;
DROP TRIGGER shares_acl_del;
DROP TRIGGER group_members_acl_ins;
DROP TRIGGER group_members_acl_upd;
DROP TRIGGER group_members_acl_del;
DROP TRIGGER share_follows_acl_ins;
DROP TRIGGER share_follows_acl_del;
DROP TRIGGER user_blocks_acl_ins;
DROP TRIGGER user_blocks_acl_del;

CREATE TRIGGER users_gc_ins AFTER INSERT ON users BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('user', NEW.id, 0); END;
CREATE TRIGGER users_gc_upd AFTER UPDATE OF enabled ON users BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('user', NEW.id, 0); END;
CREATE TRIGGER users_gc_del AFTER DELETE ON users BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('user', OLD.id, 0); END;
CREATE TRIGGER authkeys_gc_ins AFTER INSERT ON authkeys BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('key', NEW.id, 0); END;
CREATE TRIGGER authkeys_gc_upd AFTER UPDATE ON authkeys BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('key', NEW.id, 0); END;
CREATE TRIGGER authkeys_gc_del AFTER DELETE ON authkeys BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('key', OLD.id, 0); END;
CREATE TRIGGER authkey_channels_gc_ins AFTER INSERT ON authkey_channels BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('key', NEW.authkey_id, 0); END;
CREATE TRIGGER authkey_channels_gc_upd AFTER UPDATE ON authkey_channels BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('key', NEW.authkey_id, 0); END;
CREATE TRIGGER authkey_channels_gc_del AFTER DELETE ON authkey_channels BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('key', OLD.authkey_id, 0); END;
CREATE TRIGGER shares_gc_ins AFTER INSERT ON shares BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('share', NEW.id, 0); END;
CREATE TRIGGER shares_gc_upd AFTER UPDATE ON shares BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('share', NEW.id, 0); END;
CREATE TRIGGER shares_gc_del AFTER DELETE ON shares BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('share', OLD.id, 0); END;
CREATE TRIGGER group_members_gc_ins AFTER INSERT ON group_members BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('member', NEW.group_id, NEW.user_id); END;
CREATE TRIGGER group_members_gc_upd AFTER UPDATE ON group_members BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('member', NEW.group_id, NEW.user_id); END;
CREATE TRIGGER group_members_gc_del AFTER DELETE ON group_members BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('member', OLD.group_id, OLD.user_id); END;
CREATE TRIGGER share_follows_gc_ins AFTER INSERT ON share_follows BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('follow', NEW.share_id, NEW.user_id); END;
CREATE TRIGGER share_follows_gc_del AFTER DELETE ON share_follows BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('follow', OLD.share_id, OLD.user_id); END;
CREATE TRIGGER user_blocks_gc_ins AFTER INSERT ON user_blocks BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('block', NEW.blocker_id, NEW.blocked_id); END;
CREATE TRIGGER user_blocks_gc_del AFTER DELETE ON user_blocks BEGIN INSERT INTO graph_changes (kind, a, b) VALUES ('block', OLD.blocker_id, OLD.blocked_id); END;

-- At most one live (offered or accepted) share per sharer, channel and grantee, even when
-- two requests race. Duplicates the old check let through in a race keep the oldest.
UPDATE shares SET state = 'revoked'
WHERE state IN ('offered', 'accepted')
  AND id NOT IN (
    SELECT MIN(id) FROM shares WHERE state IN ('offered', 'accepted')
    GROUP BY from_user_id, channel, to_kind, COALESCE(to_user_id, 0), COALESCE(to_group_id, 0)
  );
CREATE UNIQUE INDEX shares_live_once ON shares(from_user_id, channel, to_kind, COALESCE(to_user_id, 0), COALESCE(to_group_id, 0))
WHERE state IN ('offered', 'accepted');
CREATE INDEX shares_public ON shares(to_kind, state);
