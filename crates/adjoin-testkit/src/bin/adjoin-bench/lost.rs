//! Ambiguous SendCommand failures: an SDK interceptor that lets every `every`-th
//! SendCommand reach the endpoint (the command is created) and then replaces its answer
//! with an HTTP 500, as a time-out or a server error after SSM acted would look.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone)]
pub struct LoseAnswers {
    every: u64,
    seen: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

impl LoseAnswers {
    pub fn every(every: u64) -> Self {
        LoseAnswers {
            every: every.max(1),
            seen: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// How many answers were lost.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Intercept for LoseAnswers {
    fn name(&self) -> &'static str {
        "LoseAnswers"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Metadata>().map(Metadata::name) != Some("SendCommand") {
            return Ok(());
        }
        if self.seen.fetch_add(1, Ordering::SeqCst) % self.every != 0 {
            return Ok(());
        }
        self.lost.fetch_add(1, Ordering::SeqCst);
        let response = context.response_mut();
        *response.status_mut() = StatusCode::try_from(500u16)?;
        *response.body_mut() = SdkBody::from(
            r#"{"__type":"InternalServerError","message":"the answer was lost after the command was created"}"#,
        );
        Ok(())
    }
}
