//! The social operations (who may change what, checked against the store) and the
//! SocialGraph actor that keeps every authkey's derived ACL live on the broker. Above
//! `store` and the domain; knows nothing of HTTP or frames.

pub mod access;
pub mod accounts;
pub mod export;
pub mod graph;
pub mod heartbeat;
pub mod import;
pub mod ops;
pub mod propagation;
pub mod reach;
pub mod receiving;
