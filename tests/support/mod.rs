pub mod sandbox;
pub mod store;
