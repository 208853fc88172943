//! Counting AWS API calls: an SDK interceptor, so the counts are of real requests, per
//! operation (`DynamoDB.BatchWriteItem`), for the cost table (`docs/cost.md`) and tests.
//! DynamoDB bills items, not calls, so the items each DynamoDB call carried (keys read,
//! items written) are counted too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::operation::{
    batch_get_item::BatchGetItemInput, batch_write_item::BatchWriteItemInput,
    get_item::GetItemInput, put_item::PutItemInput,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::Input;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts HTTP attempts per `Service.Operation` (a retried call counts each attempt, as
/// AWS bills them), and the items of DynamoDB item calls. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    calls: BTreeMap<String, u64>,
    items: BTreeMap<String, u64>,
}

/// Items a DynamoDB item call carries: keys read or items written (other inputs: none).
fn dynamodb_items(input: &Input) -> Option<(&'static str, u64)> {
    let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
        let keys = i
            .request_items()
            .map_or(0, |r| r.values().map(|k| k.keys().len()).sum());
        Some(("DynamoDB.BatchGetItem", len(keys)))
    } else if let Some(i) = input.downcast_ref::<BatchWriteItemInput>() {
        let items = i
            .request_items()
            .map_or(0, |r| r.values().map(Vec::len).sum());
        Some(("DynamoDB.BatchWriteItem", len(items)))
    } else if input.downcast_ref::<GetItemInput>().is_some() {
        Some(("DynamoDB.GetItem", 1))
    } else if input.downcast_ref::<PutItemInput>().is_some() {
        Some(("DynamoDB.PutItem", 1))
    } else {
        None
    }
}

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> CallCounter {
        CallCounter::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The calls so far, per operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// The items DynamoDB item calls carried so far, per operation (keys read, items
    /// written; an item call retried by the SDK counts once, an unprocessed item sent again
    /// by the caller counts again).
    pub fn items(&self) -> BTreeMap<String, u64> {
        self.lock().items.clone()
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Back to zero.
    pub fn reset(&self) {
        *self.lock() = Counts::default();
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some((operation, n)) = dynamodb_items(context.input()) {
            *self.lock().items.entry(operation.to_owned()).or_default() += n;
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg.load::<Metadata>().map_or_else(
            || String::from("unknown"),
            |m| format!("{}.{}", m.service(), m.name()),
        );
        *self.lock().calls.entry(name).or_default() += 1;
        Ok(())
    }
}
