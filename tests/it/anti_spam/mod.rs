//! The anti-spam agents against real clients: the spec's Edge (§3) on its
//! own network, our SMTP client from distinct 127.x source addresses as the
//! Internet and the Hubs, and dnsmasq serving DNS lists with 127.0.0.x
//! answers.

mod attachments;
mod connection_filter;
mod content;
mod filters;
