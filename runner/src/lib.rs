//! The runner image's programs: the container entrypoint (`runner`) and `ci-storage`.

pub mod cli;
pub mod config;
pub mod drain;
pub mod exit;
pub mod github;
pub mod hooks;
pub mod lifecycle;
pub mod prewarm;
pub mod privdrop;
pub mod register;
pub mod secret;
pub mod setup;
pub mod signals;
pub mod spawn;
pub mod status;
pub mod steps;
pub mod storage;
pub mod supervisor;
