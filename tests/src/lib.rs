//! Shared helpers for the system tests.
pub mod docker;
