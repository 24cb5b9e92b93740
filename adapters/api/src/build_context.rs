//! What adapters share while the root builds a plan's parts.

use crate::Result;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Slot = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

/// Passed to every adapter's `build`, once per plan.
///
/// Its cache lets adapters share expensive set-up without knowing about each other:
/// the S3 vault, the Secrets Manager store and the ECS restarter of one plan resolve
/// one AWS credential chain per (profile, region, endpoint), so an SSO profile
/// signs in once, not once per table.
#[derive(Default)]
pub struct BuildContext {
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .slots
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("BuildContext")
            .field("shared", &keys)
            .finish()
    }
}

impl BuildContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value cached under `key` (per type `T`), or what `init` makes of it the
    /// first time. Concurrent callers with the same key wait for one `init`; a
    /// failed `init` is not cached, so the next caller tries again.
    pub async fn shared<T, F, Fut>(&self, key: &str, init: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let full = format!("{}\u{0}{key}", std::any::type_name::<T>());
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(full)
            .or_default()
            .clone();
        let value = slot
            .get_or_try_init(|| async {
                init()
                    .await
                    .map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>)
            })
            .await?;
        Ok(value
            .downcast_ref::<T>()
            .expect("the key includes the type name")
            .clone())
    }

    /// How many distinct values were built: tests use it to prove sharing.
    pub fn shared_count(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.initialized())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn one_init_per_key_and_type() {
        let ctx = BuildContext::new();
        let calls = AtomicU32::new(0);
        let make = |v: u32| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(v)
            }
        };
        assert_eq!(ctx.shared("a", make(1)).await.unwrap(), 1);
        assert_eq!(ctx.shared("a", make(2)).await.unwrap(), 1);
        assert_eq!(ctx.shared("b", make(3)).await.unwrap(), 3);
        assert_eq!(
            ctx.shared::<String, _, _>("a", || async { Ok("s".to_owned()) })
                .await
                .unwrap(),
            "s"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(ctx.shared_count(), 3);
    }

    #[tokio::test]
    async fn a_failed_init_is_retried() {
        let ctx = BuildContext::new();
        let e = ctx
            .shared::<u32, _, _>("k", || async { Err(crate::Error::temporary("no")) })
            .await;
        assert!(e.is_err());
        assert_eq!(ctx.shared("k", || async { Ok(7u32) }).await.unwrap(), 7);
    }
}
