//! ci-storage: store and load work-directory slots on a host over ssh + rsync.
