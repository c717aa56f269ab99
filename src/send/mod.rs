//! Delivering mail: a durable per-recipient queue in the store, a small
//! transport trait (SMTP, file outbox, stub), retry decisions in one place,
//! and workers that claim, send and record in batches.

pub mod any;
pub mod breaker;
pub mod campaign;
pub mod daemon;
pub mod envelope;
pub mod error;
pub mod lock;
pub mod message;
pub mod outbox;
pub mod overview;
pub mod progress;
pub mod relays;
pub mod retry;
pub mod smtp;
pub mod transaction;
pub mod transport;
pub mod worker;

pub use any::AnyTransport;
pub use error::{SendError, Stage};
pub use transport::{Connection, Transport};
