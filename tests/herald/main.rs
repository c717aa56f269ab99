//! Herald's integration tests: one binary, one module per capability.

mod check;
mod crash;
mod helpers;
mod preview;
mod send;
mod smtp_server;
mod snapshots;
