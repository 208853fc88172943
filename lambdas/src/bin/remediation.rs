//! The remediation Lambda: the readings table's stream → the core policy → commands via
//! the IoT data plane and the decisions table. The logic is [`fleet_lambdas::remediation`].

// The SDK and runtime futures nest deeper than the default limit (128) when rustc
// computes the handler future's layout.
#![recursion_limit = "256"]

use aws_lambda_events::event::dynamodb::Event;
use fleet_lambdas::aws::dynamodb::{BatchWriter, DynamoDecisions};
use fleet_lambdas::aws::iot::IotPublisher;
use fleet_lambdas::config::{self, ProcessEnv, RemediationSettings};
use fleet_lambdas::remediation::Remediation;
use fleet_lambdas::{aws, logging, now_ms};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = RemediationSettings::from_env(&ProcessEnv)?;
    let sdk = aws::load(config::trust_roots(&ProcessEnv)?).await;
    let remediation = Remediation {
        policy: settings.policy,
        table: DynamoDecisions {
            writer: BatchWriter::new(aws::dynamodb_client(&sdk, None), settings.decisions_table),
        },
        publisher: IotPublisher {
            client: aws::iot_client(&sdk, &settings.iot_endpoint, None),
        },
        record_routine: false,
    };
    let remediation = &remediation;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let (response, _) = remediation.handle_event(event.payload, now_ms()).await;
        Ok::<_, Error>(response)
    }))
    .await
}
