pub mod subscribers;
