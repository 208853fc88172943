//! `fleet aws publish-page`: the web app's build uploaded to the bucket the stack's
//! CloudFront distribution serves (`PageHosting=true`), with the stack's `WebConfig`
//! output as its `config.json`, so the page opens against that stack.
//!
//! The stack's outputs come from CloudFormation's DescribeStacks; each file is one S3
//! PutObject with its `Content-Type` and `Cache-Control` (`site`). Those two SDKs are seen
//! only in this module.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use clap::Args;

use super::sdk_config;
use super::site::{self, Body, StackPage};

/// Flags of `fleet aws publish-page`.
#[derive(Debug, Clone, Args)]
pub struct PublishPageArgs {
    /// The stack (deployed with PageHosting=true; BrowserAccess=true for its WebConfig).
    #[arg(long, value_name = "NAME")]
    pub stack: String,
    /// The web app's build to upload (scripts/build-web.sh writes dist/).
    #[arg(long, value_name = "DIR", default_value = "dist")]
    pub dist: PathBuf,
    /// Publish the page in in-page mode (its fleet and cloud run in the tab) instead of
    /// against the stack: for a stack without WebConfig (BrowserAccess=false).
    #[arg(long)]
    pub in_page: bool,
    /// AWS region (default: AWS_REGION, or the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Talk to this AWS-compatible server instead of AWS (e.g. http://127.0.0.1:5000 for
    /// moto; S3 is then addressed path-style).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

pub async fn run(args: PublishPageArgs) -> Result<()> {
    let started = Instant::now();
    let config = sdk_config(args.region.as_deref(), args.endpoint_url.as_deref()).await?;
    let outputs = stack_outputs(&aws_sdk_cloudformation::Client::new(&config), &args.stack)
        .await
        .with_context(|| format!("reading the outputs of stack {}", args.stack))?;
    let page = StackPage::from_outputs(&args.stack, &outputs, args.in_page)?;
    let files = site::plan(&args.dist, page.config)?;

    // moto and other local servers answer on one host name: address buckets in the path.
    let s3_conf = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(args.endpoint_url.is_some())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(s3_conf);
    let mut bytes = 0usize;
    for file in &files {
        let body = match &file.body {
            Body::File(path) => {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            }
            Body::Text(text) => text.clone().into_bytes(),
        };
        bytes += body.len();
        s3.put_object()
            .bucket(&page.bucket)
            .key(&file.key)
            .content_type(file.content_type)
            .cache_control(file.cache_control)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| anyhow!("{}", describe(&e)))
            .with_context(|| format!("uploading {} to s3://{}", file.key, page.bucket))?;
        println!(
            "  {:<44} {:<32} {}",
            file.key, file.content_type, file.cache_control
        );
    }
    println!(
        "Uploaded {} files ({:.1} KB) to s3://{} in {:.1} s; config.json is {}.",
        files.len(),
        bytes as f64 / 1024.0,
        page.bucket,
        started.elapsed().as_secs_f64(),
        if args.in_page {
            "in-page"
        } else {
            "the stack's WebConfig output"
        }
    );
    if let Some(url) = page.url {
        println!("Open {url}");
    }
    Ok(())
}

/// The stack's outputs, as (key, value) pairs.
async fn stack_outputs(
    client: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Vec<(String, String)>> {
    let out = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| match e.message() {
            // CloudFormation says so with a ValidationError.
            Some(m) if m.contains("does not exist") => {
                anyhow!("no stack named {stack} in this account and region ({m})")
            }
            _ => anyhow!("DescribeStacks: {}", describe(&e)),
        })?;
    let Some(found) = out.stacks().first() else {
        bail!("no stack named {stack} in this account and region");
    };
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}

/// An SDK error in words: the service's code and message, or the chain of causes
/// (a refused connection, a timeout, TLS).
fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(code) = e.code() {
        return format!("{code}: {}", e.message().unwrap_or("(no message)"));
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
