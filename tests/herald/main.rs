//! Herald's integration tests: one binary, one module per capability.

mod bounce_corpus;
mod bounces;
mod check;
mod crash;
mod feeds;
mod helpers;
mod preview;
mod send;
mod serve;
mod smtp_server;
mod snapshots;
mod subscribe_web;
mod subscriber_app;
mod subscribers_cli;
mod subscription_props;
mod webhooks;
