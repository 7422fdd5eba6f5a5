//! The runner image's programs: the container entrypoint (`runner`) and `ci-storage`.

pub mod storage;
