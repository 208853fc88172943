//! The archive bucket: one `PutObject` per archive object.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use fleet_core::{ArchiveObject, plan::NDJSON_CONTENT_TYPE};
use fleet_pipeline::StoreError;

use crate::ports::Archive;

/// An S3 bucket as the archive.
#[derive(Debug, Clone)]
pub struct S3Archive {
    /// The client.
    pub client: Client,
    /// The bucket.
    pub bucket: String,
}

impl Archive for S3Archive {
    async fn put_object(&self, object: &ArchiveObject) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .content_type(NDJSON_CONTENT_TYPE)
            .body(ByteStream::from(object.body.clone().into_bytes()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| super::store_error("put archive object", e))
    }
}
