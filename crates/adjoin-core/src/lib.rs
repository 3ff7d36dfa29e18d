//! adjoin's domain: joins EC2 instances to Active Directory when they start and removes
//! their computer objects when they terminate.
//!
//! Pure parts (parsing, decisions, names, rendering) and the worker that wires them to
//! the outside world through [`ports`]. No AWS SDK here: adapters live in `adjoin-aws`.
//!
//! The test doubles are compiled only for tests and with the `test-util` feature (which
//! the other crates enable in their `[dev-dependencies]`, never in a binary): in-memory
//! fakes of every port in `fake` and `admin::fake` (one world), fault injection for any
//! port in `faults`, and what tests build alike in `testing`.

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
pub mod documents;
pub mod error;
pub mod event;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
#[cfg(any(test, feature = "test-util"))]
pub mod faults;
pub mod ids;
pub mod instance;
pub mod ledger;
pub mod metrics;
pub mod one_time_password;
pub mod outcome;
pub mod ports;
pub mod render;
pub mod scripts;
pub mod sqs;
pub mod staging;
#[cfg(any(test, feature = "test-util"))]
#[allow(clippy::expect_used)]
pub mod testing;
pub mod text;
pub mod worker;

pub use error::Error;
