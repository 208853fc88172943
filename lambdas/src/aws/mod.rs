//! The AWS adapters: the only place SDK types appear.
//!
//! - [`dynamodb`]: the readings table and the decisions table (BatchWriteItem with
//!   retries of unprocessed items, GetItem), and item conversions.
//! - [`s3`]: the archive bucket. - [`iot`]: publishing through the IoT data plane.
//! - [`stdout`]: EMF lines on stdout. - [`calls`]: an interceptor counting API calls.
//!
//! Clients share one [`SdkConfig`] loaded once at init, with an HTTPS client on rustls and
//! ring (the workspace's TLS choice: no aws-lc C build) that trusts the roots chosen by
//! [`TrustRoots`]: by default only Amazon Trust Services' five, compiled in, because loading
//! the platform's store (~140 files on Debian, a bundle on Amazon Linux) was about a third
//! of a cold start's init (BENCHMARKS.md, Lambdas). An endpoint override
//! (`AWS_ENDPOINT_URL`, or `endpoint_url` in tests against moto) also switches S3 to
//! path-style addressing, which local endpoints need.

pub mod calls;
pub mod dynamodb;
pub mod iot;
pub mod s3;
pub mod stdout;

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use calls::CallCounter;

/// The root certificates of Amazon Trust Services (Amazon Root CA 1–4 and Starfield Services
/// Root CA G2), which every AWS service endpoint's certificate chains to, including the
/// IoT `-ats` data endpoint. PEM, with the source and fingerprints in its header.
pub const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// Which root certificates the HTTPS client trusts (`TLS_ROOTS`, see
/// [`crate::config::trust_roots`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustRoots {
    /// [`AMAZON_TRUST_SERVICES`] only (`amazon`, the default): enough for every AWS endpoint,
    /// and nothing to read from disk at a cold start.
    #[default]
    Amazon,
    /// The platform's store as well (`platform`): for endpoints behind another CA, such as a
    /// TLS-inspecting proxy or a private S3-compatible server.
    Platform,
}

/// HTTPS (and plain HTTP for local endpoints) on rustls with ring, trusting `roots`.
pub fn http_client(roots: TrustRoots) -> SharedHttpClient {
    let store = TrustStore::empty()
        .with_native_roots(roots == TrustRoots::Platform)
        .with_pem_certificate(AMAZON_TRUST_SERVICES);
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        // `build` cannot fail for a trust store alone; should it one day, the default
        // context (the platform's roots) still makes a working client.
        .tls_context(
            TlsContext::builder()
                .with_trust_store(store)
                .build()
                .unwrap_or_default(),
        )
        .build_https()
}

/// The config loader with this crate's HTTP client; callers may add a region,
/// credentials or an endpoint (tests) before `load()`.
pub fn loader(roots: TrustRoots) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client(roots))
}

/// The SDK config from the Lambda environment (region, credentials, endpoint overrides).
pub async fn load(roots: TrustRoots) -> SdkConfig {
    loader(roots).load().await
}

/// A DynamoDB client, counting calls into `counter` if given.
pub fn dynamodb_client(
    config: &SdkConfig,
    counter: Option<&CallCounter>,
) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(config);
    if let Some(c) = counter {
        b = b.interceptor(c.clone());
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// An S3 client (path-style when the endpoint is overridden).
pub fn s3_client(config: &SdkConfig, counter: Option<&CallCounter>) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    if let Some(c) = counter {
        b = b.interceptor(c.clone());
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// An IoT data plane client for the account's endpoint (`https://xxxx-ats.iot.…`).
pub fn iot_client(
    config: &SdkConfig,
    endpoint: &str,
    counter: Option<&CallCounter>,
) -> aws_sdk_iotdataplane::Client {
    let mut b = aws_sdk_iotdataplane::config::Builder::from(config).endpoint_url(endpoint);
    if let Some(c) = counter {
        b = b.interceptor(c.clone());
    }
    aws_sdk_iotdataplane::Client::from_conf(b.build())
}

/// An SDK error as a store error, keeping the SDK error (with its code and message) as the
/// source.
pub(crate) fn store_error<E>(operation: &'static str, e: E) -> fleet_pipeline::StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fleet_pipeline::StoreError::new(operation, DisplayErrorContext(e))
}

/// Shows the whole chain of an SDK error (its `Display` alone says only "service error").
#[derive(Debug)]
pub(crate) struct DisplayErrorContext<E>(pub(crate) E);

impl<E: std::error::Error> std::fmt::Display for DisplayErrorContext<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl<E: std::error::Error + 'static> std::error::Error for DisplayErrorContext<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
