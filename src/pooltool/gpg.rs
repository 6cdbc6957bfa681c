//! The gpg subprocess of gpg mode: the epoch's slot list encrypted symmetrically with its
//! passphrase, as PoolTool's `send_slots.sh` does. The passphrase goes through gpg's stdin, never
//! its command line; a run is bounded by the reporter's timeout and killed when abandoned.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::wire::ReportError;
use crate::describe;

/// Encrypts `plaintext` (plus a newline, as `echo` adds) with `gpg --symmetric --armor --batch`.
/// The passphrase goes through gpg's stdin (`--passphrase-fd 0`, first line), never the command
/// line. The armored message, trailing whitespace removed.
pub async fn gpg_encrypt(
    gpg: &Path,
    passphrase: &str,
    plaintext: &str,
    timeout: Duration,
) -> Result<String, ReportError> {
    let mut child = tokio::process::Command::new(gpg)
        .args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--symmetric",
            "--armor",
            "--passphrase-fd",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ReportError::Gpg(format!("cannot run {}: {e}", gpg.display())))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ReportError::Gpg("no stdin".into()))?;
    let input = format!("{passphrase}\n{plaintext}\n");
    let feed = async move {
        // A write error shows as gpg's own failure below.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    };
    let run = async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(output) => output.map_err(|e| ReportError::Gpg(e.to_string()))?,
        Err(_elapsed) => return Err(ReportError::Gpg(format!("no result within {timeout:?}"))),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ReportError::Gpg(format!(
            "{}: {}",
            output.status,
            describe::excerpt(stderr.trim(), 200)
        )));
    }
    let armored = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string();
    if !armored.starts_with("-----BEGIN PGP MESSAGE-----") {
        return Err(ReportError::Gpg("no armored message in the output".into()));
    }
    Ok(armored)
}
