//! One file per table (or closely bound pair of tables), queries as `Store` methods.

pub mod accounts;
pub mod applied;
pub mod audit;
pub mod authkeys;
pub mod catalogue;
pub mod consent;
pub mod graph;
pub mod groups;
pub mod key_log;
pub mod key_stats;
pub mod shares;
pub mod users;
