DROP TABLE share_dismissals;
