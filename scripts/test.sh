#!/usr/bin/env bash
# Full local/CI check of the whole workspace (nodekeeper and crates/nodekeeper-sim): rustfmt,
# clippy (warnings are errors) and every test target, against a real supervisord from
# $ROOT/.venv (installed on first use) and Debian's prometheus package (promtool, prometheus:
# installed with apt-get when missing).
#
#   scripts/test.sh                 # everything
#   scripts/test.sh ctl             # extra args go to `cargo test`
#   scripts/test.sh -- --nocapture
#
# All three steps run even when an earlier one fails (and every test target runs: --no-fail-fast);
# the exit status is non-zero if any failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$ROOT"
need_cmd cargo "install the Rust toolchain, e.g. from https://rustup.rs"

# ensure_component CARGO_SUBCOMMAND RUSTUP_COMPONENT: add rustfmt/clippy when a minimal toolchain
# lacks them.
ensure_component() {
    if ! cargo "$1" --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 || die "'cargo $1' is not available and rustup is not installed"
        info "installing rustup component $2"
        rustup component add "$2" >/dev/null || die "rustup component add $2 failed"
    fi
}

step "venv: supervisor $SUPERVISOR_VERSION, aiosmtpd"
# aiosmtpd (pinned like supervisor) is the SMTP server the email-alert tests (tests/it/alert.rs)
# send to.
ensure_venv aiosmtpd==1.4.6
info "NODEKEEPER_SUPERVISORD=$NODEKEEPER_SUPERVISORD"
# Headless Chromium and its WebDriver for the dashboard's browser test (tests/it/dashboard.rs).
ensure_apt chromedriver chromium chromium-driver
info "NODEKEEPER_CHROMEDRIVER=${NODEKEEPER_CHROMEDRIVER:=$(command -v chromedriver)}"
export NODEKEEPER_CHROMEDRIVER
# promtool and prometheus check the observability pack (tests/it/observability.rs).
ensure_apt promtool prometheus
export NODEKEEPER_PROMTOOL="${NODEKEEPER_PROMTOOL:-$(command -v promtool)}"
export NODEKEEPER_PROMETHEUS="${NODEKEEPER_PROMETHEUS:-$(command -v prometheus)}"
ensure_component fmt rustfmt
ensure_component clippy clippy

failed=()

# run_step TITLE COMMAND...: run one check with a header and its duration; remember failures.
run_step() {
    local title="$1" start=$SECONDS rc=0
    shift
    step "$title"
    "$@" || rc=$?
    if ((rc == 0)); then
        info "$title: ok ($((SECONDS - start)) s)"
    elif ((rc > 128)); then
        die "$title: interrupted (exit $rc)"
    else
        info "$title: FAILED (exit $rc, $((SECONDS - start)) s)"
        failed+=("$title")
    fi
}

run_step "cargo fmt --check" cargo fmt --all --check
run_step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
# Not --all-targets: that would also run the benchmarks (harness = false) as tests. --workspace
# also builds the nodekeeper-sim binary (for its own tests) before any test runs, and
# nodekeeper's integration tests spawn it.
run_step "cargo test" cargo test --workspace --no-fail-fast "$@"

echo >&2
if ((${#failed[@]} > 0)); then
    summary=""
    for title in "${failed[@]}"; do
        summary+="${summary:+, }$title"
    done
    die "failed: $summary"
fi
info "all checks passed"
