//! Ferry: an SMTP transport appliance in the mould of Exchange Edge and Hub
//! Transport, configured over a REST API. See `DESIGN.md` for the shape.

pub mod model;
