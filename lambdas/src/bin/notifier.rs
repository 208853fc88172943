//! The notifier Lambda: CloudWatch alarms via SNS → `AlarmNotice` JSON on the alarms topic.
//! The logic is [`fleet_lambdas::notifier`].

// The SDK and runtime futures nest deeper than the default limit (128) when rustc
// computes the handler future's layout.
#![recursion_limit = "256"]

use aws_lambda_events::event::sns::SnsEvent;
use fleet_lambdas::aws::iot::IotPublisher;
use fleet_lambdas::config::{self, NotifierSettings, ProcessEnv};
use fleet_lambdas::notifier::Notifier;
use fleet_lambdas::{aws, logging};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = NotifierSettings::from_env(&ProcessEnv)?;
    let sdk = aws::load(config::trust_roots(&ProcessEnv)?).await;
    let notifier = Notifier {
        topic: settings.alarms_topic,
        publisher: IotPublisher {
            client: aws::iot_client(&sdk, &settings.iot_endpoint, None),
        },
    };
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        notifier
            .handle(event.payload)
            .await
            .map(|r| serde_json::json!({ "published": r.published.len(), "rejected": r.rejected }))
    }))
    .await
}
