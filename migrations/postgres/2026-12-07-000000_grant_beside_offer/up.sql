-- A grant (the publisher's own data, answering a request for access) may stand beside a
-- wider offer still waiting for the same grantee: at most one offered and one accepted
-- share per sharer, channel and grantee. Accepting the offer then ends the grant
-- (`Store::accept_replacing`), so two accepted shares never stand together.
DROP INDEX shares_live_once;
CREATE UNIQUE INDEX shares_live_once ON shares(from_user_id, channel, to_kind, COALESCE(to_user_id, 0), COALESCE(to_group_id, 0), state)
WHERE state IN ('offered', 'accepted');
