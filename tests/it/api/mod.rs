//! API integration tests: a real Ferry on port 0 with a fresh data
//! directory, driven over HTTP.

mod accepted_domains;
mod acme;
mod audit;
mod auth_and_docs;
mod certificates;
mod config_doc;
mod credentials;
mod defaults;
mod explain;
mod fleet;
mod generated_client;
mod https;
mod joint_rules;
mod receive_connectors;
mod restart;
mod send_connectors;
mod tokens;
mod transport_settings;
