//! The hostile suite: what independent testing did to Ferry as an adversary
//! would (issue 13), kept as regressions. Each test names the attack it pins.
//! Run alone with `cargo test --test it hostile::`.

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
