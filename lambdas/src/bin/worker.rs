//! The worker Lambda: IoT Rule → SQS (or direct) → EMF, S3 archive, readings table.
//! Config and clients are made once at init; the logic is [`fleet_lambdas::worker`].

// The SDK and runtime futures nest deeper than the default limit (128) when rustc
// computes the handler future's layout.
#![recursion_limit = "256"]

use fleet_lambdas::aws::dynamodb::{BatchWriter, DynamoReadings};
use fleet_lambdas::aws::s3::S3Archive;
use fleet_lambdas::aws::stdout::StdoutMetrics;
use fleet_lambdas::config::{self, ProcessEnv, WorkerSettings};
use fleet_lambdas::worker::{Worker, WorkerEvent};
use fleet_lambdas::{aws, logging, now_ms};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = WorkerSettings::from_env(&ProcessEnv)?;
    let sdk = aws::load(config::trust_roots(&ProcessEnv)?).await;
    let worker = Worker {
        config: settings.worker,
        legacy_device: settings.legacy_device,
        table: DynamoReadings {
            writer: BatchWriter::new(aws::dynamodb_client(&sdk, None), settings.readings_table),
        },
        archive: S3Archive {
            client: aws::s3_client(&sdk, None),
            bucket: settings.archive_bucket,
        },
        metrics: StdoutMetrics,
    };
    let worker = &worker;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<WorkerEvent>| async move {
            worker
                .handle_event(event.payload, &event.context.request_id, now_ms())
                .await
        },
    ))
    .await
}
