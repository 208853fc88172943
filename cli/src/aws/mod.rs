//! `fleet aws`: device identities on AWS IoT Core, created in bulk and removed again, and
//! the web app published to the page hosting of a deployed stack.
//!
//! On AWS the device policy binds a connection to its thing (`iot:Connection.Thing.ThingName`,
//! `iot:Connection.Thing.IsAttached`, ARCHITECTURE §4.8): a device connects with client id =
//! its thing name = its device id, using its own certificate. `provision` makes exactly that
//! for each device and writes the files `fleet sim --cert-dir` loads; `deprovision` undoes it.
//!
//! # Layout
//! - `provision`: thing, active certificate, policy and thing attachments per device; the
//!   files; the manifest.
//! - `deprovision`: detach, deactivate, delete what a manifest lists; remove the files.
//! - `manifest`: `fleet-devices.json`, the record of what `provision` created.
//! - `registry`: the IoT control-plane calls; the only module that sees SDK types.
//! - `pace`: starting devices at a fixed rate, a bounded number in flight, until done,
//!   failed or interrupted.
//! - `publish_page`: the web app's build into the stack's page bucket, with the stack's
//!   `config.json` (CloudFormation and S3 calls); `site`: which objects, with which
//!   headers, in which order.
//!
//! # Key decisions
//! - The manifest is the only list `deprovision` trusts: it removes what `provision`
//!   created and nothing else, so a thing of the same name that was there before is never
//!   touched. Every step is recorded once AWS has confirmed it, and the manifest is written
//!   at least once a second, at the end, on the first error and on Ctrl-C.
//! - Paced by device, not by call: each device makes each API call once, so `--rate` devices
//!   per second means at most that many calls per second of any one API. The default, 5,
//!   is half of IoT Core's lowest default quota among the calls made (10 per second for
//!   CreateKeysAndCertificate, UpdateCertificate and DeleteCertificate), leaving room for
//!   other tools in the account; throttled calls are retried by the SDK with backoff.
//! - The SDK is set up as the Lambdas' is (`lambdas/src/aws`): rustls on ring through
//!   aws-smithy-http-client, no aws-lc C build. Being a command on a user's machine, it
//!   trusts the platform's roots as well as Amazon Trust Services' (proxies, local servers).

mod deprovision;
mod manifest;
mod pace;
mod provision;
mod publish_page;
mod registry;
mod site;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use clap::{Args, Subcommand};

pub use deprovision::DeprovisionArgs;
pub use provision::ProvisionArgs;
pub use publish_page::PublishPageArgs;

/// Amazon Trust Services' root certificates (Amazon Root CA 1–4, Starfield Services Root CA
/// G2), with their source and fingerprints: the Lambdas' copy, so there is one.
const AMAZON_TRUST_SERVICES: &str =
    include_str!("../../../lambdas/src/aws/amazon-trust-services.pem");

/// Flags of `fleet aws`.
#[derive(Debug, Args)]
pub struct AwsArgs {
    #[command(subcommand)]
    command: AwsCommand,
}

#[derive(Debug, Subcommand)]
enum AwsCommand {
    /// Create N devices on AWS IoT Core: per device a thing named by its id, an active
    /// certificate with the stack's device policy attached, and the thing attached to it.
    /// Writes DIR/{id}.cert.pem, DIR/{id}.private.key (0600), DIR/AmazonRootCA1.pem and the
    /// manifest DIR/fleet-devices.json; prints the data endpoint and the `fleet sim` command.
    Provision(Box<ProvisionArgs>),
    /// Remove what `fleet aws provision` created, as its manifest lists it: detach the
    /// policy and the thing, deactivate and delete each certificate, delete each thing, and
    /// remove the files. Things or certificates already gone are fine.
    Deprovision(Box<DeprovisionArgs>),
    /// Upload the web app (dist/) to the page bucket of a stack deployed with
    /// PageHosting=true, with the stack's WebConfig output as config.json: every file with
    /// its Content-Type, hashed assets cached for a year (immutable), index.html and
    /// config.json no-cache, index.html last. Prints the page's URL.
    PublishPage(Box<PublishPageArgs>),
}

/// Where the IoT control plane is, and how fast to call it.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// AWS region (default: AWS_REGION, or the profile's region; for deprovision, the
    /// manifest's).
    #[arg(long)]
    pub region: Option<String>,
    /// Talk to this AWS-compatible server instead of AWS (e.g. http://127.0.0.1:5000 for
    /// moto).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Devices per second. Each device makes each API call once, so no API is called more
    /// often than this; 5 is half of IoT Core's lowest default quota among those calls
    /// (10/s for CreateKeysAndCertificate, UpdateCertificate, DeleteCertificate).
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
}

impl Connection {
    /// The rate, checked.
    fn rate(&self) -> Result<f64> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1000.0) {
            bail!(
                "--rate {}: give devices per second, above 0 and at most 1000",
                self.rate
            );
        }
        Ok(self.rate)
    }
}

pub fn run(args: AwsArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match args.command {
        AwsCommand::Provision(args) => runtime.block_on(provision::run(*args)),
        AwsCommand::Deprovision(args) => runtime.block_on(deprovision::run(*args)),
        AwsCommand::PublishPage(args) => runtime.block_on(publish_page::run(*args)),
    }
}

/// The SDK configuration: the usual chain for credentials and region, the region and
/// endpoint given, generous retries for throttling, and rustls on ring.
async fn sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> Result<SdkConfig> {
    let store = TrustStore::default().with_pem_certificate(AMAZON_TRUST_SERVICES);
    let tls = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .context("building the HTTPS client's trust store")?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        // Throttling is the expected failure of a bulk run: up to 8 attempts with the
        // standard exponential backoff (capped at 20 s) ride out a burst.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_max_backoff(Duration::from_secs(20)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        bail!("no AWS region: give --region or set AWS_REGION");
    }
    Ok(config)
}

/// Amazon Root CA 1 alone (with its subject and fingerprint lines), cut from the bundle: the
/// file IoT Core's documentation calls `AmazonRootCA1.pem`, which its ATS endpoints chain to.
fn amazon_root_ca1() -> Result<&'static str> {
    let bundle = AMAZON_TRUST_SERVICES;
    let start = bundle
        .find("# subject=C = US, O = Amazon, CN = Amazon Root CA 1\n")
        .context("the compiled-in Amazon bundle has no Amazon Root CA 1")?;
    const END: &str = "-----END CERTIFICATE-----\n";
    let end = bundle[start..]
        .find(END)
        .context("the compiled-in Amazon Root CA 1 has no end")?;
    Ok(&bundle[start..start + end + END.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_file_is_amazon_root_ca_1_alone() {
        let pem = amazon_root_ca1().unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 1);
        assert!(pem.contains(
            "8E:CD:E6:88:4F:3D:87:B1:12:5B:A3:1A:C3:FC:B1:3D:70:16:DE:7F:57:CC:90:4F:E1:CB:97:C6:AE:98:19:6E"
        ));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        // Where the platform ships it (Debian's ca-certificates), it is the same certificate.
        if let Ok(platform) = std::fs::read_to_string("/etc/ssl/certs/Amazon_Root_CA_1.pem") {
            let body = |s: &str| -> String {
                s.lines()
                    .skip_while(|l| !l.starts_with("-----BEGIN"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(body(pem).trim(), body(&platform).trim());
        }
    }

    #[test]
    fn the_rate_must_be_positive() {
        let c = |rate| Connection {
            region: None,
            endpoint_url: None,
            rate,
        };
        assert!(c(5.0).rate().is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 5000.0] {
            let err = c(bad).rate().unwrap_err().to_string();
            assert!(err.contains("--rate"), "{err}");
        }
    }
}
