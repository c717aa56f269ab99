//! Herald's integration tests: one binary, one module per capability.

mod bounce_corpus;
mod bounces;
mod check;
mod check_render_props;
mod config_cli;
mod corrupt_database;
mod crash;
mod dovecot;
mod feeds;
mod helpers;
mod imap;
mod install;
mod leases;
mod preview;
mod send;
mod serve;
mod server_limits;
mod smtp_server;
mod snapshots;
mod spamassassin;
mod subscribe_web;
mod subscriber_app;
mod subscribers_cli;
mod subscription_props;
mod two_processes;
mod webhooks;
