//! SDK interceptors that let a test see what the server did, or step in at an exact moment:
//! [`IndexCapacity`] asks the server for the capacity each write consumed in each global
//! secondary index (`ReturnConsumedCapacity = INDEXES`) and adds it up; [`BeforeFirst`]
//! runs a step once, just before the first request of one operation is sent.
//!
//! Both work on any client and any endpoint: they change nothing but what the request
//! asks the server to report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemInput, DeleteItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The operation a request is for, from its `x-amz-target` header (`PutItem`, …).
pub(crate) fn operation(headers: &aws_smithy_runtime_api::http::Headers) -> String {
    headers
        .get("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned()
}

/// `client` with `interceptor` added (same configuration otherwise).
fn with_interceptor(client: &Client, interceptor: impl Intercept + 'static) -> Client {
    Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(interceptor)
            .build(),
    )
}

/// Write capacity consumed in each global secondary index, by write operation, as the
/// server reported it. Put it on a client with [`IndexCapacity::client`].
#[derive(Debug, Clone, Default)]
pub struct IndexCapacity {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    /// `(operation, index)` → units.
    units: HashMap<(String, String), f64>,
    /// `(operation, index)` → requests that consumed units in the index.
    writes: HashMap<(String, String), usize>,
    /// Requests whose answer carried a `ConsumedCapacity`.
    reported: usize,
}

impl IndexCapacity {
    /// `client`, with this recorder added.
    pub fn client(&self, client: &Client) -> Client {
        with_interceptor(client, self.clone())
    }

    /// Units consumed in `index` by every write since the last reset.
    pub fn units(&self, index: &str) -> f64 {
        self.lock()
            .units
            .iter()
            .filter(|((_, i), _)| i == index)
            .map(|(_, u)| u)
            // `f64`'s sum of nothing is -0.0.
            .fold(0.0, |sum, u| sum + u)
    }

    /// Units consumed in `index` by `operation` (`PutItem`, `UpdateItem`, `DeleteItem`).
    pub fn units_by(&self, operation: &str, index: &str) -> f64 {
        let key = (operation.to_owned(), index.to_owned());
        self.lock().units.get(&key).copied().unwrap_or(0.0)
    }

    /// How many write requests consumed capacity in `index`.
    pub fn writes(&self, index: &str) -> usize {
        self.lock()
            .writes
            .iter()
            .filter(|((_, i), _)| i == index)
            .map(|(_, n)| n)
            .sum()
    }

    /// How many answers carried a capacity report at all (0: the server reports none).
    pub fn reported(&self) -> usize {
        self.lock().reported
    }

    /// Forgets everything.
    pub fn reset(&self) {
        *self.lock() = Seen::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, operation: &str, capacity: Option<&ConsumedCapacity>) {
        let Some(capacity) = capacity else { return };
        let mut seen = self.lock();
        seen.reported += 1;
        for (index, used) in capacity.global_secondary_indexes().into_iter().flatten() {
            let units = used
                .capacity_units()
                .or(used.write_capacity_units())
                .unwrap_or(0.0);
            let key = (operation.to_owned(), index.clone());
            *seen.units.entry(key.clone()).or_default() += units;
            if units > 0.0 {
                *seen.writes.entry(key).or_default() += 1;
            }
        }
    }
}

impl Intercept for IndexCapacity {
    fn name(&self) -> &'static str {
        "IndexCapacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let indexes = Some(ReturnConsumedCapacity::Indexes);
        if let Some(put) = input.downcast_mut::<PutItemInput>() {
            put.return_consumed_capacity = indexes;
        } else if let Some(update) = input.downcast_mut::<UpdateItemInput>() {
            update.return_consumed_capacity = indexes;
        } else if let Some(delete) = input.downcast_mut::<DeleteItemInput>() {
            delete.return_consumed_capacity = indexes;
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        if let Some(out) = output.downcast_ref::<PutItemOutput>() {
            self.record("PutItem", out.consumed_capacity());
        } else if let Some(out) = output.downcast_ref::<UpdateItemOutput>() {
            self.record("UpdateItem", out.consumed_capacity());
        } else if let Some(out) = output.downcast_ref::<DeleteItemOutput>() {
            self.record("DeleteItem", out.consumed_capacity());
        }
        Ok(())
    }
}

/// A one-off step.
type Step = Box<dyn FnOnce() + Send>;

/// Runs a step once, synchronously, just before the first request of one operation is
/// transmitted: a deterministic "meanwhile" for race tests. The step blocks that request
/// (and the task sending it) until it returns; run async work in it with
/// [`BeforeFirst::blocking`] on a multi-threaded runtime.
#[derive(Clone)]
pub struct BeforeFirst {
    operation: &'static str,
    step: Arc<Mutex<Option<Step>>>,
}

impl std::fmt::Debug for BeforeFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeforeFirst")
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl BeforeFirst {
    /// Runs `step` before the first `operation` request (e.g. `DeleteItem`).
    pub fn new(operation: &'static str, step: impl FnOnce() + Send + 'static) -> Self {
        Self {
            operation,
            step: Arc::new(Mutex::new(Some(Box::new(step)))),
        }
    }

    /// A step that runs `future` to completion on the current multi-threaded runtime.
    pub fn blocking<F>(future: F) -> impl FnOnce() + Send + 'static
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::runtime::Handle::current();
        move || tokio::task::block_in_place(|| handle.block_on(future))
    }

    /// `client`, with this step added.
    pub fn client(&self, client: &Client) -> Client {
        with_interceptor(client, self.clone())
    }

    /// Whether the step has run.
    pub fn ran(&self) -> bool {
        self.step
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

impl Intercept for BeforeFirst {
    fn name(&self) -> &'static str {
        "BeforeFirst"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if operation(context.request().headers()) != self.operation {
            return Ok(());
        }
        let step = self.step.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(step) = step {
            step();
        }
        Ok(())
    }
}
