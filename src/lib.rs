//! Ferry: an SMTP transport appliance in the mould of Exchange Edge and Hub
//! Transport, configured over a REST API. See `DESIGN.md` for the shape.

pub mod agents;
pub mod api;
pub mod config;
pub mod directory;
pub mod model;
pub mod observe;
pub mod queue;
pub mod routing;
pub mod secrets;
pub mod shutdown;
pub mod smtp;
pub mod startup;
pub mod store;
pub mod tls;
