DROP TABLE key_traffic;
