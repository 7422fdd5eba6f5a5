//! Docker end-to-end harness: real images on private networks, the mock GitHub and the storage
//! host as containers, runner containers with the documented environment.
//!
//! One [`Stack`] per test: its own network, its own mock GitHub, container names with a random
//! suffix (they are the DNS names on that network). Containers are removed when the stack is
//! dropped, unless `E2E_KEEP=1` (or `TESTCONTAINERS_COMMAND=keep`) asks to leave them.

pub mod engine;
pub mod images;
pub mod keys;
pub mod mock;
pub mod runner;
pub mod stack;
pub mod storage;
pub mod timing;
pub mod wait;

pub use engine::{Engine, Exec, Exited, LogLine};
pub use images::Images;
pub use keys::{AppKey, SshKey};
pub use mock::Mock;
pub use runner::{Runner, RunnerSpec};
pub use stack::Stack;
pub use storage::StorageHost;
pub use timing::Timings;
pub use wait::eventually;

/// Token the mock GitHub accepts (its default PAT), used as `GH_TOKEN` by the runners.
pub const TEST_TOKEN: &str = "test-token";
