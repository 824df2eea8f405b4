DROP TABLE access_requests;
DROP TABLE channel_traffic;
