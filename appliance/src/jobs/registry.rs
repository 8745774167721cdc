//! Which handler runs each kind of job: the worker looks the kind up here
//! and knows nothing of what the handlers do.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::context::JobCtx;
use crate::queue::{JobError, Kind};

/// A handler's run: borrows the context for as long as it runs.
pub type JobRun<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// Runs the jobs of one kind. Idempotent: delivery is at least once.
pub trait Handler: Send + Sync {
    fn run<'a>(&'a self, ctx: &'a JobCtx) -> JobRun<'a>;
}

/// The handler of each kind this server runs.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<Kind, Arc<dyn Handler>>,
}

impl Registry {
    pub fn with(mut self, kind: Kind, handler: impl Handler + 'static) -> Registry {
        self.handlers.insert(kind, Arc::new(handler));
        self
    }

    pub fn get(&self, kind: Kind) -> Option<&dyn Handler> {
        self.handlers.get(&kind).map(|h| &**h)
    }
}
