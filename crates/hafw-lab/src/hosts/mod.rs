//! The lab's test hosts, built into our own binary so a lab namespace needs
//! no curl, ping or python: a web server and its client ([`web`],
//! [`fetch`]), an echo host that tells each client the source address it saw
//! ([`echo`], [`ask`]), and a prober that measures loss and outages through
//! a failover ([`prober`], [`report`]), also run on any host as `hafw probe`.
//!
//! Everything here uses the standard library only and blocking sockets with
//! threads: the hosts are small and their timing must not depend on a
//! runtime's scheduler. Each program is a function that takes a config and a
//! [`Stop`] and returns a `Result`.

pub mod ask;
pub mod churn;
pub mod echo;
mod error;
pub mod fetch;
pub mod flood;
mod http;
mod icmp;
pub mod outage;
pub mod prober;
pub mod report;
mod sock;
mod stop;
pub mod web;

pub use ask::{ask, ask_via};
pub use churn::{churn, ChurnConfig, ChurnReport};
pub use echo::{serve_echo, EchoConfig, EchoServer, EchoStats};
pub use error::HostError;
pub use fetch::{fetch, Fetched};
pub use flood::{flood, sniff_epoch, FloodConfig, FloodReport};
pub use prober::{probe, Method, ProbeConfig};
pub use report::{LossSpan, ProbeReport, ProbeResult};
pub use stop::Stop;
pub use web::{serve_web, WebConfig, WebServer, WebStats};
