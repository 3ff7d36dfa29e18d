//! A fixed latency on every AWS call: the emulator answers at once, a real endpoint does
//! not. The SDK's HTTP client, wrapped so that each request waits before it is sent.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// `sdk` with `latency` added to every request (none: `sdk` as it is). Without an HTTP
/// client of its own, the SDK's default one for plain HTTP (the emulator's).
pub fn with_latency(sdk: SdkConfig, latency: Duration) -> SdkConfig {
    if latency.is_zero() {
        return sdk;
    }
    let inner = sdk
        .http_client()
        .unwrap_or_else(|| aws_smithy_http_client::Builder::new().build_http());
    sdk.into_builder()
        .http_client(SharedHttpClient::new(Delayed { inner, latency }))
        .build()
}

#[derive(Debug)]
struct Delayed {
    inner: SharedHttpClient,
    latency: Duration,
}

impl HttpClient for Delayed {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(DelayedConnector {
            inner: self.inner.http_connector(settings, components),
            latency: self.latency,
        })
    }
}

#[derive(Debug)]
struct DelayedConnector {
    inner: SharedHttpConnector,
    latency: Duration,
}

impl HttpConnector for DelayedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let latency = self.latency;
        HttpConnectorFuture::new(async move {
            tokio::time::sleep(latency).await;
            inner.call(request).await
        })
    }
}
