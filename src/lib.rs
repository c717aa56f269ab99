//! Herald: a newsletter pipeline. Stages, each a module with one job:
//! `issue` reads issue files, `render` turns them into email, feeds and
//! pages, `store` keeps subscribers and deliveries, `send` delivers, `http`
//! serves; `bounce` learns what happened after a relay took the mail;
//! `clicks` counts clicks on the links a campaign's email tracks;
//! `commands` are what the CLI calls.

pub mod bounce;
pub mod cli;
pub mod clicks;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod http;
pub mod issue;
pub mod render;
pub mod send;
pub mod store;
pub mod subscription;
