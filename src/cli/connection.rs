//! How a command reaches supervisord: URL, user name and password (from the environment or a file,
//! never a plain flag), and the call timeouts.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::supervisor::{Client, ClientOptions, Endpoint};

/// Environment variable holding the supervisord password.
pub const PASSWORD_ENV: &str = "NODEKEEPER_SUPERVISOR_PASSWORD";

/// Connection options shared by every command that talks to supervisord.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// supervisord's XML-RPC endpoint: http://HOST:PORT/RPC2 or unix:///PATH.sock.
    #[arg(
        long = "supervisor",
        env = "NODEKEEPER_SUPERVISOR_URL",
        default_value = "http://127.0.0.1:9001/RPC2",
        value_name = "URL"
    )]
    pub url: String,

    /// User name for supervisord's HTTP basic authentication.
    #[arg(long, env = "NODEKEEPER_SUPERVISOR_USER", value_name = "USER")]
    pub user: Option<String>,

    /// File holding the password (first line). The password may instead come from the environment
    /// variable NODEKEEPER_SUPERVISOR_PASSWORD; it is never accepted as a flag.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Timeout of each call that answers at once, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = positive_secs)]
    pub timeout: f64,

    /// Timeout of start and stop calls, which wait for the program (must exceed its startsecs and
    /// stopwaitsecs), in seconds.
    #[arg(long, default_value_t = 300.0, value_name = "SECS", value_parser = positive_secs)]
    pub wait_timeout: f64,
}

fn positive_secs(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs < 1e6 {
        Ok(secs)
    } else {
        Err(format!(
            "{text:?}: expected a positive number of seconds below 1000000"
        ))
    }
}

impl ConnectionArgs {
    /// Resolves the password and builds the client. Errors are usage errors (exit 2): they are
    /// mistakes in how the command was invoked, found before anything is sent.
    pub fn client(&self) -> Result<Client, Failure> {
        let endpoint = Endpoint::parse(&self.url).map_err(|e| Failure::usage(e.to_string()))?;
        let password = self.password()?;
        let credentials = match (&self.user, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (Some(user), None) => {
                return Err(Failure::usage(format!(
                    "user {user:?} given without a password: set {PASSWORD_ENV} or use --password-file"
                )));
            }
            (None, Some(_)) => {
                return Err(Failure::usage(
                    "a password was given without a user name: set --user or NODEKEEPER_SUPERVISOR_USER",
                ));
            }
            (None, None) => None,
        };
        let options = ClientOptions {
            timeout: Duration::from_secs_f64(self.timeout),
            wait_timeout: Duration::from_secs_f64(self.wait_timeout),
            ..ClientOptions::default()
        };
        Client::new(&endpoint, credentials, options).map_err(Failure::from)
    }

    fn password(&self) -> Result<Option<String>, Failure> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::usage(format!("cannot read password file {}: {e}", path.display()))
            })?;
            let password = text.lines().next().unwrap_or("").to_string();
            if password.is_empty() {
                return Err(Failure::usage(format!(
                    "password file {} is empty: expected the password on its first line",
                    path.display()
                )));
            }
            return Ok(Some(password));
        }
        Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()))
    }
}
