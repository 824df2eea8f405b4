-- The whole hpfriends schema (ARCHITECTURE.md, "The social model"): later work adds
-- behaviour over these tables rather than rewriting them. Times are unix seconds.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

-- invited -> active; members may leave, the owner may remove.
CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    state TEXT NOT NULL CHECK (state IN ('invited', 'active')),
    invited_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

CREATE TABLE authkeys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ident TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    comment TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX authkeys_owner ON authkeys(owner_id);

CREATE TABLE authkey_channels (
    authkey_id BIGINT NOT NULL REFERENCES authkeys(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    can_publish BOOLEAN NOT NULL DEFAULT 0,
    can_subscribe BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (authkey_id, channel)
);
CREATE INDEX authkey_channels_channel ON authkey_channels(channel);

-- from user --channel--> (a user | a group | everyone), own or redistribute.
CREATE TABLE shares (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    to_kind TEXT NOT NULL CHECK (to_kind IN ('user', 'group', 'everyone')),
    to_user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    to_group_id BIGINT REFERENCES groups(id) ON DELETE CASCADE,
    share_type TEXT NOT NULL CHECK (share_type IN ('own', 'redistribute')),
    state TEXT NOT NULL CHECK (state IN ('offered', 'accepted', 'declined', 'revoked', 'left')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (
        (to_kind = 'user' AND to_user_id IS NOT NULL AND to_group_id IS NULL)
        OR (to_kind = 'group' AND to_group_id IS NOT NULL AND to_user_id IS NULL)
        OR (to_kind = 'everyone' AND to_user_id IS NULL AND to_group_id IS NULL)
    )
);
CREATE INDEX shares_from ON shares(from_user_id, channel);
CREATE INDEX shares_to_user ON shares(to_user_id);
CREATE INDEX shares_to_group ON shares(to_group_id);

-- Who changed what, when: every change of the social graph and of keys.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log(at);

-- Misuse of a key, for its owner to read: failed auth, refused channel.
CREATE TABLE key_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    authkey_id BIGINT REFERENCES authkeys(id) ON DELETE CASCADE,
    ident TEXT NOT NULL,
    event TEXT NOT NULL,
    channel TEXT,
    peer TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX key_log_key ON key_log(authkey_id, at);
CREATE INDEX key_log_ident ON key_log(ident, at);

CREATE TABLE key_stats (
    authkey_id BIGINT PRIMARY KEY NOT NULL REFERENCES authkeys(id) ON DELETE CASCADE,
    messages_published BIGINT NOT NULL DEFAULT 0,
    bytes_published BIGINT NOT NULL DEFAULT 0,
    messages_received BIGINT NOT NULL DEFAULT 0,
    bytes_received BIGINT NOT NULL DEFAULT 0,
    last_seen_at BIGINT,
    last_peer TEXT
);

-- Email verification, invitations, password reset, API tokens: only hashes are stored.
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('verify_email', 'password_reset', 'invitation', 'api')),
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    payload TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    used_at BIGINT
);

-- Bumped by triggers on every change that can alter an ACL, so that a running broker
-- notices a change made by another process (the CLI, another node) with one cheap read.
CREATE TABLE acl_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO acl_version (id, version) VALUES (1, 0);

CREATE TRIGGER users_acl_upd AFTER UPDATE OF enabled ON users BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_acl_del AFTER DELETE ON users BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER authkeys_acl_ins AFTER INSERT ON authkeys BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER authkeys_acl_upd AFTER UPDATE ON authkeys BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER authkeys_acl_del AFTER DELETE ON authkeys BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER authkey_channels_acl_ins AFTER INSERT ON authkey_channels BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER authkey_channels_acl_upd AFTER UPDATE ON authkey_channels BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER authkey_channels_acl_del AFTER DELETE ON authkey_channels BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER shares_acl_ins AFTER INSERT ON shares BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER shares_acl_upd AFTER UPDATE ON shares BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER shares_acl_del AFTER DELETE ON shares BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER group_members_acl_ins AFTER INSERT ON group_members BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER group_members_acl_upd AFTER UPDATE ON group_members BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER group_members_acl_del AFTER DELETE ON group_members BEGIN UPDATE acl_version SET version = version + 1 WHERE id = 1; END;
