//! nodekeeper's single integration-test binary: real supervisord, simulated nodes, real HTTP.

mod alert;
mod analyze;
mod api;
mod config;
mod ctl;
mod daemon;
mod leadership;
mod reload;
mod sim;
mod supervisor_conf;
mod support;
