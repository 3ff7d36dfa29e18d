//! adjoin's domain: joins EC2 instances to Active Directory when they start and removes
//! their computer objects when they terminate.
//!
//! Pure parts (parsing, decisions, names, rendering) and the worker that wires them to
//! the outside world through [`ports`]. No AWS SDK here: adapters live in `adjoin-aws`,
//! in-memory fakes in [`fake`], fault injection in [`faults`].

// Every outside string reaches this crate: it must not be able to crash the worker.
// (`panic = "abort"` would fail the whole batch on every redelivery.)
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::panic
    )
)]

pub mod admin;
pub mod arn;
pub mod cache;
pub mod computer_name;
pub mod config;
pub mod error;
pub mod event;
pub mod fake;
pub mod faults;
pub mod ids;
pub mod instance;
pub mod ledger;
pub mod metrics;
pub mod outcome;
pub mod ports;
pub mod render;
pub mod scripts;
pub mod sqs;
pub mod text;
pub mod worker;

pub use error::Error;
