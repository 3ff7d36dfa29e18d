//! SDK clients, built from an `SdkConfig` with the interceptors every client gets (the
//! benchmark counts calls with one; the service runs with none).

use aws_config::SdkConfig;
use aws_sdk_ssm::config::SharedInterceptor;

/// Makes SDK clients; cheap to clone.
#[derive(Clone, Default)]
pub struct Clients {
    interceptors: Vec<SharedInterceptor>,
}

macro_rules! client {
    ($(#[$doc:meta])* $name:ident, $sdk:ident) => {
        $(#[$doc])*
        pub fn $name(&self, config: &SdkConfig) -> $sdk::Client {
            let mut builder = $sdk::config::Builder::from(config);
            for interceptor in &self.interceptors {
                builder.push_interceptor(interceptor.clone());
            }
            $sdk::Client::from_conf(builder.build())
        }
    };
}

impl Clients {
    /// Every client made from now on runs `interceptor` on each call.
    pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    client!(dynamodb, aws_sdk_dynamodb);
    client!(ec2, aws_sdk_ec2);
    client!(sqs, aws_sdk_sqs);
    client!(ssm, aws_sdk_ssm);
    client!(sts, aws_sdk_sts);
}
