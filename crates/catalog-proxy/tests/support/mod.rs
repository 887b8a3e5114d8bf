//! Helpers for the proxy's tests: the fake upstream, and the agent's loopback helpers
//! (one raw HTTP/1.1 client for the workspace, read as a file, not as a dependency).

// The agent's tests/support/net.rs needs only std and the protocol crate (a dev-dependency).
#[path = "../../../../tests/support/net.rs"]
pub mod net;
pub mod upstream;
