//! nodekeeper's single integration-test binary: real supervisord, simulated nodes, real HTTP.

// Real processes, real time: deadlines and waits here are measured with the std clock.
#![allow(clippy::disallowed_types)]

mod alert;
mod analyze;
mod api;
mod backup;
mod cardano;
mod cardano_adapter;
mod channels;
mod cluster;
mod config;
mod ctl;
mod daemon;
mod dashboard;
mod events;
mod fence;
mod hosts;
mod leader_api;
mod leadership;
mod listener;
mod nodeos;
mod nodeos_adapter;
mod observability;
mod reload;
mod supervisor_conf;
mod support;
mod tail_log;
