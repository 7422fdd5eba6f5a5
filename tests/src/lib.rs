//! Shared helpers for the system tests.
pub mod docker;
pub mod entrypoint;
