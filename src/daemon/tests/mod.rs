//! Scenario tests of the shell (placeholder).
