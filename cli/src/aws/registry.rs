//! The IoT control-plane calls `fleet aws` makes, over `aws-sdk-iot`: the only module that
//! sees SDK types.
//!
//! Every call returns a [`CallError`] that sorts the service's answer into what the callers
//! decide on ([`ErrorKind`]): the resource is not there, a deletion has to wait for a detach
//! to propagate (IoT Core detaches asynchronously), or anything else. The message carries
//! the service's code and words (or the chain of causes), and the SDK error stays with it.

use aws_sdk_iot::Client;
use aws_sdk_iot::config::http::HttpResponse;
use aws_sdk_iot::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::CertificateStatus;

use super::SdkConfig;

/// What a failed call means to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing, certificate, policy or attachment does not exist.
    NotFound,
    /// The resource is still attached to something (for a deletion right after a detach,
    /// which IoT Core applies asynchronously: try again shortly).
    StillAttached,
    /// Anything else: credentials, permissions, throttling after the SDK's retries, …
    Other,
}

/// A failed IoT call.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct CallError {
    /// The API operation, e.g. `CreateThing`.
    pub operation: &'static str,
    /// What it means.
    pub kind: ErrorKind,
    detail: String,
    /// The SDK's error. Not the `source()`: `detail` already says what it says (code and
    /// message, or the chain of causes), and an error chain would print it twice.
    pub sdk: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CallError {
    fn from_sdk<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = match e.code() {
            Some("ResourceNotFoundException") => ErrorKind::NotFound,
            Some("DeleteConflictException") => ErrorKind::StillAttached,
            // DeleteThing on a thing with principals: "…is still attached to one or more
            // principals" (moto), "…has attached principals" (IoT Core).
            Some("InvalidRequestException")
                if e.message().is_some_and(|m| m.contains("attached")) =>
            {
                ErrorKind::StillAttached
            }
            _ => ErrorKind::Other,
        };
        // The service's code and message when it gave them; else the status, or the chain
        // of causes (timeouts, refused connections, TLS).
        let detail = match (e.code(), &e) {
            (Some(code), _) => format!("{code}: {}", e.message().unwrap_or("(no message)")),
            (None, SdkError::ServiceError(ctx)) => {
                format!("HTTP {} without an error code", ctx.raw().status().as_u16())
            }
            (None, _) => chain(&e),
        };
        CallError {
            operation,
            kind,
            detail,
            sdk: Some(Box::new(e)),
        }
    }

    fn missing(operation: &'static str, field: &str) -> CallError {
        CallError {
            operation,
            kind: ErrorKind::Other,
            detail: format!("the response has no {field}"),
            sdk: None,
        }
    }

    /// Whether the resource was not there.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// A certificate just created, with its private key (which AWS never returns again).
pub struct NewCertificate {
    /// The certificate id (the SHA-256 of its DER form, hex).
    pub id: String,
    /// Its ARN, the principal that policies and things attach to.
    pub arn: String,
    /// The certificate, PEM.
    pub pem: String,
    /// The private key, PEM.
    pub private_key: String,
}

/// The IoT control plane of one account and region.
#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
}

impl Registry {
    /// A client for the configuration's region and endpoint.
    pub fn new(config: &SdkConfig) -> Registry {
        // Every call gets all its attempts: the SDK's shared retry quota (500 tokens, 5 a
        // retry) suits many callers of one service, but here `--rate` already bounds the
        // load, and one device must not fail because other devices' throttles used it up.
        let partition = RetryPartition::custom("fleet-aws")
            .token_bucket(TokenBucket::unlimited())
            .build();
        let conf = aws_sdk_iot::config::Builder::from(config)
            .retry_partition(partition)
            .build();
        Registry {
            client: Client::from_conf(conf),
        }
    }

    /// The account's device data endpoint (`iot:Data-ATS`), e.g.
    /// `xxxxxxxx-ats.iot.eu-west-1.amazonaws.com`.
    pub async fn data_endpoint(&self) -> Result<String, CallError> {
        const OP: &str = "DescribeEndpoint";
        let out = self
            .client
            .describe_endpoint()
            .endpoint_type("iot:Data-ATS")
            .send()
            .await
            .map_err(|e| CallError::from_sdk(OP, e))?;
        out.endpoint_address
            .ok_or_else(|| CallError::missing(OP, "endpointAddress"))
    }

    /// A policy's ARN (a `NotFound` error if there is no such policy).
    pub async fn policy_arn(&self, name: &str) -> Result<String, CallError> {
        const OP: &str = "GetPolicy";
        let out = self
            .client
            .get_policy()
            .policy_name(name)
            .send()
            .await
            .map_err(|e| CallError::from_sdk(OP, e))?;
        out.policy_arn
            .ok_or_else(|| CallError::missing(OP, "policyArn"))
    }

    /// Whether a thing of this name exists.
    pub async fn thing_exists(&self, name: &str) -> Result<bool, CallError> {
        match self.client.describe_thing().thing_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) => match CallError::from_sdk("DescribeThing", e) {
                e if e.is_not_found() => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Creates a thing; returns its ARN.
    pub async fn create_thing(&self, name: &str) -> Result<String, CallError> {
        const OP: &str = "CreateThing";
        let out = self
            .client
            .create_thing()
            .thing_name(name)
            .send()
            .await
            .map_err(|e| CallError::from_sdk(OP, e))?;
        out.thing_arn
            .ok_or_else(|| CallError::missing(OP, "thingArn"))
    }

    /// Creates a key pair and an ACTIVE certificate for it.
    pub async fn create_certificate(&self) -> Result<NewCertificate, CallError> {
        const OP: &str = "CreateKeysAndCertificate";
        let out = self
            .client
            .create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await
            .map_err(|e| CallError::from_sdk(OP, e))?;
        Ok(NewCertificate {
            id: out
                .certificate_id
                .ok_or_else(|| CallError::missing(OP, "certificateId"))?,
            arn: out
                .certificate_arn
                .ok_or_else(|| CallError::missing(OP, "certificateArn"))?,
            pem: out
                .certificate_pem
                .ok_or_else(|| CallError::missing(OP, "certificatePem"))?,
            private_key: out
                .key_pair
                .and_then(|k| k.private_key)
                .ok_or_else(|| CallError::missing(OP, "keyPair.PrivateKey"))?,
        })
    }

    /// Attaches a policy to a certificate.
    pub async fn attach_policy(&self, policy: &str, cert_arn: &str) -> Result<(), CallError> {
        self.client
            .attach_policy()
            .policy_name(policy)
            .target(cert_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("AttachPolicy", e))
    }

    /// Attaches a certificate to a thing.
    pub async fn attach_thing(&self, thing: &str, cert_arn: &str) -> Result<(), CallError> {
        self.client
            .attach_thing_principal()
            .thing_name(thing)
            .principal(cert_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("AttachThingPrincipal", e))
    }

    /// Detaches a policy from a certificate.
    pub async fn detach_policy(&self, policy: &str, cert_arn: &str) -> Result<(), CallError> {
        self.client
            .detach_policy()
            .policy_name(policy)
            .target(cert_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("DetachPolicy", e))
    }

    /// Detaches a certificate from a thing.
    pub async fn detach_thing(&self, thing: &str, cert_arn: &str) -> Result<(), CallError> {
        self.client
            .detach_thing_principal()
            .thing_name(thing)
            .principal(cert_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("DetachThingPrincipal", e))
    }

    /// Sets a certificate INACTIVE: devices can no longer connect with it, and it can be
    /// deleted.
    pub async fn deactivate_certificate(&self, id: &str) -> Result<(), CallError> {
        self.client
            .update_certificate()
            .certificate_id(id)
            .new_status(CertificateStatus::Inactive)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("UpdateCertificate", e))
    }

    /// Deletes an inactive certificate with nothing attached.
    pub async fn delete_certificate(&self, id: &str) -> Result<(), CallError> {
        self.client
            .delete_certificate()
            .certificate_id(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("DeleteCertificate", e))
    }

    /// Deletes a thing with no principal attached.
    pub async fn delete_thing(&self, name: &str) -> Result<(), CallError> {
        self.client
            .delete_thing()
            .thing_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| CallError::from_sdk("DeleteThing", e))
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
