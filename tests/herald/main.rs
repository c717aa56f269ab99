//! Herald's integration tests: one binary, one module per capability.

mod check;
mod feeds;
mod helpers;
mod preview;
mod serve;
mod snapshots;
