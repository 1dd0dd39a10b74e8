//! Delivery tests: a real Ferry routes, delivers, retries and bounces mail
//! to real peers on 127.N.0.x — Postfix as an authenticated STARTTLS smart
//! host, dnsmasq for MX records, a recording SMTP/LMTP peer — and the queue
//! viewer API acts on what is queued.

pub mod setup;

mod bounces;
mod bulk;
mod dane;
mod dnssec;
mod drain;
mod dsn;
mod mailboxes;
mod mta_sts;
mod observability;
mod queue_api;
mod requiretls;
mod routing;
mod smarthost;
mod webhooks;
