//! Counting AWS API calls: an SDK interceptor, so the counts are of real requests, per
//! operation (`DynamoDB.BatchWriteItem`), for the cost table (`docs/cost.md`) and tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts HTTP attempts per `Service.Operation` (a retried call counts each attempt, as
/// AWS bills them). Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> CallCounter {
        CallCounter::default()
    }

    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Back to zero.
    pub fn reset(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
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
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name)
            .or_default() += 1;
        Ok(())
    }
}
