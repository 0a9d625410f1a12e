//! Integration tests of the embedded API server through kube-rs (and raw HTTP for exact bodies),
//! one module per theme.

mod common;
mod http;
mod objects;
mod pods;
mod watch;
