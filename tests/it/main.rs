//! nodekeeper's single integration-test binary: real supervisord, simulated nodes, real HTTP.

mod ctl;
mod sim;
mod support;
