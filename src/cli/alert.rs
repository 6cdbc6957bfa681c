//! `nodekeeper alert test`: one test mail with the current `[email]` settings and templates.

use clap::Subcommand;

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::alert::{self, TestMailError};
use crate::time::SystemClock;

/// The `alert` commands.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test mail with the current configuration (also when email.enabled is false).
    Test,
}

/// Runs an `alert` command: 0 when the server took the mail, 1 (naming the server) when not,
/// 2 when the configuration cannot make a mailer.
pub async fn run(source: &ConfigSourceArgs, command: AlertCommand) -> Result<u8, Failure> {
    match command {
        AlertCommand::Test => {
            let config = source.load()?;
            if !config.email.enabled {
                eprintln!("note: email.enabled is false: the daemon sends no alerts");
            }
            match alert::send_test(&config.email, &config.alert_facts(), &SystemClock).await {
                Ok(server) => {
                    println!(
                        "test mail sent through {server} to {}",
                        config.email.to.join(", ")
                    );
                    Ok(0)
                }
                Err(TestMailError::Start(e)) => Err(Failure::usage(e.to_string())),
                Err(TestMailError::Send(e)) => Err(Failure::runtime(e.to_string())),
            }
        }
    }
}
