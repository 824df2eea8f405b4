//! Diesel table definitions, matching `migrations/sqlite`. Written by hand and kept in step
//! with the migrations by the store's own tests (every query runs against a migrated file).
#![allow(missing_docs)]

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        email_verified -> Bool,
        enabled -> Bool,
        is_admin -> Bool,
        created_at -> BigInt,
        affiliation -> Text,
        about -> Text,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        name -> Text,
        owner_id -> BigInt,
        description -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        state -> Text,
        invited_by -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    authkeys (id) {
        id -> BigInt,
        ident -> Text,
        secret -> Text,
        owner_id -> BigInt,
        enabled -> Bool,
        comment -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    authkey_channels (authkey_id, channel) {
        authkey_id -> BigInt,
        channel -> Text,
        can_publish -> Bool,
        can_subscribe -> Bool,
    }
}

diesel::table! {
    shares (id) {
        id -> BigInt,
        from_user_id -> BigInt,
        channel -> Text,
        to_kind -> Text,
        to_user_id -> Nullable<BigInt>,
        to_group_id -> Nullable<BigInt>,
        share_type -> Text,
        state -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        onward -> Bool,
    }
}

diesel::table! {
    share_follows (share_id, user_id) {
        share_id -> BigInt,
        user_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    share_dismissals (user_id, share_id) {
        share_id -> BigInt,
        user_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    channel_traffic (channel, bucket) {
        channel -> Text,
        bucket -> BigInt,
        messages -> BigInt,
        bytes -> BigInt,
        deliveries -> BigInt,
    }
}

diesel::table! {
    key_traffic (authkey_id, bucket) {
        authkey_id -> BigInt,
        bucket -> BigInt,
        published -> BigInt,
        published_bytes -> BigInt,
        received -> BigInt,
        received_bytes -> BigInt,
        slow_cuts -> BigInt,
    }
}

diesel::table! {
    access_requests (id) {
        id -> BigInt,
        from_user_id -> BigInt,
        to_user_id -> BigInt,
        channel -> Text,
        note -> Text,
        state -> Text,
        share_id -> Nullable<BigInt>,
        created_at -> BigInt,
        answered_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    user_blocks (blocker_id, blocked_id) {
        blocker_id -> BigInt,
        blocked_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    acl_applied (node) {
        node -> Text,
        version -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor_user_id -> Nullable<BigInt>,
        actor -> Text,
        action -> Text,
        subject -> Text,
        detail -> Text,
    }
}

diesel::table! {
    key_log (id) {
        id -> BigInt,
        at -> BigInt,
        authkey_id -> Nullable<BigInt>,
        ident -> Text,
        event -> Text,
        channel -> Nullable<Text>,
        peer -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    key_stats (authkey_id) {
        authkey_id -> BigInt,
        messages_published -> BigInt,
        bytes_published -> BigInt,
        messages_received -> BigInt,
        bytes_received -> BigInt,
        last_seen_at -> Nullable<BigInt>,
        last_peer -> Nullable<Text>,
    }
}

diesel::table! {
    tokens (id) {
        id -> BigInt,
        token_hash -> Text,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        payload -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        used_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    acl_version (id) {
        id -> BigInt,
        version -> BigInt,
    }
}

diesel::table! {
    graph_changes (id) {
        id -> BigInt,
        kind -> Text,
        a -> BigInt,
        b -> BigInt,
        at -> BigInt,
    }
}

diesel::table! {
    graph_log (id) {
        id -> BigInt,
        pruned_through -> BigInt,
    }
}

diesel::table! {
    web_sessions (token_hash) {
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        peer -> Text,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(web_sessions -> users (user_id));
diesel::joinable!(authkeys -> users (owner_id));
diesel::joinable!(authkey_channels -> authkeys (authkey_id));
diesel::joinable!(groups -> users (owner_id));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(audit_log -> users (actor_user_id));
diesel::joinable!(key_log -> authkeys (authkey_id));
diesel::joinable!(key_stats -> authkeys (authkey_id));
diesel::joinable!(key_traffic -> authkeys (authkey_id));
diesel::joinable!(share_follows -> shares (share_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    groups,
    group_members,
    authkeys,
    authkey_channels,
    shares,
    audit_log,
    key_log,
    key_stats,
    tokens,
    acl_version,
    web_sessions,
    server_secrets,
    share_follows,
    share_dismissals,
    channel_traffic,
    key_traffic,
    access_requests,
    user_blocks,
    acl_applied,
    graph_changes,
    graph_log,
);
