//! Publishing through the IoT data plane (`iot:Publish`), QoS 1.

use aws_sdk_iotdataplane::Client;
use aws_sdk_iotdataplane::primitives::Blob;
use fleet_pipeline::StoreError;

use crate::ports::Publisher;

/// IoT Core's data plane as the publisher.
#[derive(Debug, Clone)]
pub struct IotPublisher {
    /// The client, built for the account's data-ATS endpoint.
    pub client: Client,
}

impl Publisher for IotPublisher {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic(topic)
            .qos(1)
            .payload(Blob::new(payload))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| super::store_error("iot publish", e))
    }
}
