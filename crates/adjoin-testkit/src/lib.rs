//! The test bed for adjoin: a local AWS API emulator (moto server) and helpers that seed
//! it with what a deployment has — the config table, member accounts with instances,
//! the AD tools host, the DLQ — and read back what the service did.
//!
//! Used by the integration tests and by `cargo xtask demo`.

mod moto;
pub mod samples;
mod seed;

pub use moto::{DetachedMoto, Moto};
pub use seed::{Bed, HOME_ACCOUNT, RecordedCommand, StoredParameter, event};

/// What can go wrong setting up the test bed. All permanent for the run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start moto_server ({0}); install it with: pip install 'moto[server]'")]
    Start(std::io::Error),
    #[error("moto_server did not answer on {0} within 30 s")]
    NotReady(String),
    #[error("{operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
}

pub(crate) fn aws<E: std::fmt::Debug>(operation: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Aws {
        operation,
        message: format!("{e:?}"),
    }
}
