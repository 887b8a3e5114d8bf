//! The HTTP faces (below the command line, above the domain): the agents' API, the admin API
//! and its orders, licenses and events routes, Buy Now, the fleet page, the listeners with TLS, and [`app::App`],
//! the wiring every handler shares. Handlers turn requests into domain calls; no domain
//! module imports from here.

pub mod admin;
pub mod admin_enroll;
pub mod admin_events;
pub mod admin_licenses;
pub mod admin_orders;
pub mod api;
pub mod app;
pub mod body;
pub mod buy;
pub mod enroll_api;
pub mod openapi;
pub mod server;
pub mod tls;
pub mod ui;
