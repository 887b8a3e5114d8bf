//! Commerce (domain layer): orders that become KA keys and then jobs for the fleet,
//! licenses and their operations after the sale, and the webhooks that send the event feed
//! (`crate::events`) to the store. Uses the fleet's store and the KA client; no HTTP here
//! (the admin routes for orders are in `http::admin_orders`).

pub mod licenses;
pub mod orders;
pub mod webhooks;
