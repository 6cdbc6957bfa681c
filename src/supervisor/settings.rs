//! `SupervisorSettings`: how to reach one supervisord (endpoint, credentials, timeouts), as the
//! configuration resolves them, and the `Client` made from them.

use std::time::Duration;

use super::client::{Client, ClientOptions};
use super::endpoint::Endpoint;
use super::error::SupervisorError;
use crate::secret::Secret;

/// How to reach one supervisord.
#[derive(Clone, Debug)]
pub struct SupervisorSettings {
    /// `default` for `[supervisor]`, else the key of `[supervisors.NAME]`.
    pub name: String,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// User and password, when it requires them.
    pub credentials: Option<(String, Secret)>,
    /// Timeout of calls that answer at once.
    pub timeout: Duration,
    /// Timeout of start/stop calls that wait.
    pub wait_timeout: Duration,
}

impl SupervisorSettings {
    /// A client of this supervisord.
    pub fn client(&self) -> Result<Client, SupervisorError> {
        Client::new(
            &self.endpoint,
            self.credentials
                .as_ref()
                .map(|(user, password)| (user.clone(), password.expose().to_string())),
            ClientOptions {
                timeout: self.timeout,
                wait_timeout: self.wait_timeout,
                ..ClientOptions::default()
            },
        )
    }
}
