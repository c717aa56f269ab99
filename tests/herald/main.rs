//! Herald's integration tests: one binary, one module per capability.

mod check;
mod helpers;
mod preview;
mod snapshots;
mod subscribe_web;
mod subscriber_app;
mod subscribers_cli;
mod subscription_props;
