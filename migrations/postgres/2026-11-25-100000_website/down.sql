DROP INDEX shares_channel;
DROP INDEX tokens_user;
DROP TABLE server_secrets;
DROP TABLE web_sessions;
