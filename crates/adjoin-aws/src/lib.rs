//! AWS SDK adapters for adjoin's ports: one per port, thin, no decisions.
//!
//! | port | adapter | AWS API |
//! |---|---|---|
//! | `ConfigStore` | [`DynamoConfigStore`] | DynamoDB GetItem |
//! | `Sessions` | [`AwsSessions`] | STS AssumeRole, GetCallerIdentity |
//! | `Instances` | [`Ec2Instances`] | EC2 DescribeInstances |
//! | `Commands` | [`SsmCommands`] | SSM SendCommand, GetCommandInvocation |
//! | `Parameters` | [`SsmParameters`] | SSM PutParameter, AddTagsToResource, DeleteParameter |
//! | `Ledger` | [`DynamoLedger`] | DynamoDB BatchGetItem, conditional PutItem |
//! | `Queue` | [`SqsQueue`] | SQS SendMessage, ChangeMessageVisibility |
//! | `admin::*` (operator commands) | [`admin`] | DynamoDB PutItem/Scan/DeleteItem, SSM DescribeInstanceInformation/DescribeParameters, Secrets Manager DescribeSecret, STS AssumeRole |

pub mod admin;
#[cfg(test)]
mod canned;
mod clients;
mod commands;
mod config_store;
mod error;
mod instances;
mod ledger;
mod parameters;
mod queue;
mod sdk;
mod sessions;
pub mod settings;
#[cfg(test)]
mod templates;

pub use clients::Clients;
pub use commands::SsmCommands;
pub use config_store::DynamoConfigStore;
pub use error::Error;
pub use instances::Ec2Instances;
pub use ledger::DynamoLedger;
pub use parameters::SsmParameters;
pub use queue::SqsQueue;
pub use sdk::load_sdk_config;
pub use sessions::{AwsSessions, Caching};
pub use settings::{EnvSettings, Reconciler, build_reconciler, build_worker, build_worker_with};
