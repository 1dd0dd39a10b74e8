//! The hostile suite: what independent testing did to Ferry as an adversary
//! would (issue 13), kept as regressions. Each test names the attack it pins.
//! Run alone with `cargo test --test hostile`.

#[path = "../smtp/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../smtp/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "../smtp/scenario.rs"]
#[allow(dead_code)]
mod scenario;
#[path = "../delivery/sink.rs"]
#[allow(dead_code)]
mod sink;

#[allow(dead_code)]
mod process;
mod relay_guard;

mod api_hygiene;
mod auth_flood;
mod big_config;
mod big_messages;
mod data_dir;
mod envelope;
mod process_output;
mod routing_reasons;
mod stuck;
