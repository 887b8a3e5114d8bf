//! The fleet (domain layer): hosts and their tokens, the job queue, held polls' waiters, wake
//! pushes, each host's health and presence (host.offline / host.back), and (on PostgreSQL) the replicas' change propagation.
//! Imports only from `db` and the base modules, never from `http` or `cli`.

pub mod enroll;
pub mod host_health;
pub mod presence;
pub mod push;
pub mod replicas;
pub mod store;
pub mod tokens;
pub mod waiters;
