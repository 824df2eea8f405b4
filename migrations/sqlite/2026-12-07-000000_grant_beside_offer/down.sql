-- Back to one live share per sharer, channel and grantee: an offer standing beside an
-- accepted share is withdrawn.
UPDATE shares SET state = 'revoked'
WHERE state = 'offered'
  AND EXISTS (
    SELECT 1 FROM shares a WHERE a.state = 'accepted'
      AND a.from_user_id = shares.from_user_id AND a.channel = shares.channel
      AND a.to_kind = shares.to_kind
      AND COALESCE(a.to_user_id, 0) = COALESCE(shares.to_user_id, 0)
      AND COALESCE(a.to_group_id, 0) = COALESCE(shares.to_group_id, 0)
  );
DROP INDEX shares_live_once;
CREATE UNIQUE INDEX shares_live_once ON shares(from_user_id, channel, to_kind, COALESCE(to_user_id, 0), COALESCE(to_group_id, 0))
WHERE state IN ('offered', 'accepted');
