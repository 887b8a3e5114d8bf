pub mod daemon;
pub mod sandbox;
pub mod store;
