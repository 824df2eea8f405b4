//! hpfriends: an hpfeeds broker whose delivery follows a social sharing graph.
//!
//! See `README.md` for running it and `../shared/design/ARCHITECTURE.md` for the shape.

pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod limiter;
pub mod mail;
pub mod metrics;
pub mod server;
pub mod social;
pub mod store;
pub mod tls;
pub mod web;
pub mod wire;
