//! Helpers shared by the black-box tests (and, through `#[path]`, the benches): the agent
//! sandbox, the daemon under test, loopback networking and the fake store.

pub mod daemon;
pub mod net;
pub mod sandbox;
pub mod store;
