pub mod daemon;
pub mod net;
pub mod sandbox;
pub mod store;
