//! `nodekeeper alert test`: one test mail with the current `[email]` settings and templates, or
//! (`--channel NAME`) one test alert to a channel of `[[alerts.channels]]`.

use clap::Subcommand;

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::alert::{self, TestMailError};
use crate::time::SystemClock;

/// The `alert` commands.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test mail with the current configuration (also when email.enabled is false), or a
    /// test alert to one channel.
    Test {
        /// The channel (`[[alerts.channels]]` name; `email` is [email]).
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
    },
}

/// Runs an `alert` command: 0 when the server took the mail, 1 (naming the server) when not,
/// 2 when the configuration cannot make a mailer.
pub async fn run(source: &ConfigSourceArgs, command: AlertCommand) -> Result<u8, Failure> {
    match command {
        AlertCommand::Test {
            channel: Some(name),
        } if name != "email" => {
            let config = source.load()?;
            let Some(settings) = config.channels.iter().find(|channel| channel.name == name) else {
                let known: Vec<&str> = std::iter::once("email")
                    .chain(config.channels.iter().map(|channel| channel.name.as_str()))
                    .collect();
                return Err(Failure::usage(format!(
                    "no channel {name:?}: expected one of {}",
                    known.join(", ")
                )));
            };
            match alert::send_channel_test(settings, &config.alert_facts(), &SystemClock).await {
                Ok(server) => {
                    println!("test alert sent to {server}");
                    Ok(0)
                }
                Err(TestMailError::Start(e)) => Err(Failure::usage(e.to_string())),
                Err(TestMailError::Send(e)) => Err(Failure::runtime(e.to_string())),
            }
        }
        AlertCommand::Test { .. } => {
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
