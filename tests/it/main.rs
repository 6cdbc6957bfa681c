//! nodekeeper's single integration-test binary: real supervisord, simulated nodes, real HTTP.

mod config;
mod ctl;
mod sim;
mod supervisor_conf;
mod support;
