//! Table tests of the leadership policy.
