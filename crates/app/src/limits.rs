//! How many long-running calls of one kind (uploads, watch streams, result
//! downloads) one server process serves at once, in all and per user. A
//! [`Slot`] counts a call until it is dropped; past either cap the call is
//! refused with RESOURCE_EXHAUSTED naming the configuration key of the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::error::ApiError;
use crate::identity::Caller;

/// One cap: how many, and the configuration key that sets it.
#[derive(Clone, Copy, Debug)]
pub struct Cap {
    pub max: usize,
    pub key: &'static str,
}

/// The caps of one kind of call.
#[derive(Clone)]
pub struct Limiter {
    /// What is counted, plural ("uploads", "watch streams").
    what: &'static str,
    all: Arc<Semaphore>,
    process_cap: Cap,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    user_cap: Cap,
}

/// One running call: counted against its user and the process until dropped.
pub struct Slot {
    user: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
    _permit: OwnedSemaphorePermit,
}

/// The limiters of one server process.
#[derive(Clone)]
pub struct Limits {
    pub uploads: Limiter,
    pub watches: Limiter,
    pub downloads: Limiter,
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        let cap = |max, key| Cap { max, key };
        Self {
            uploads: Limiter::new(
                "uploads",
                cap(
                    config.max_concurrent_uploads,
                    "IMPORTS_MAX_CONCURRENT_UPLOADS",
                ),
                cap(config.max_uploads_per_user, "IMPORTS_MAX_UPLOADS_PER_USER"),
            ),
            watches: Limiter::new(
                "watch streams",
                cap(
                    config.max_concurrent_watches,
                    "IMPORTS_MAX_CONCURRENT_WATCHES",
                ),
                cap(config.max_watches_per_user, "IMPORTS_MAX_WATCHES_PER_USER"),
            ),
            downloads: Limiter::new(
                "downloads",
                cap(
                    config.max_concurrent_downloads,
                    "IMPORTS_MAX_CONCURRENT_DOWNLOADS",
                ),
                cap(
                    config.max_downloads_per_user,
                    "IMPORTS_MAX_DOWNLOADS_PER_USER",
                ),
            ),
        }
    }
}

impl Limiter {
    pub fn new(what: &'static str, process_cap: Cap, user_cap: Cap) -> Self {
        Self {
            what,
            all: Arc::new(Semaphore::new(process_cap.max)),
            process_cap,
            per_user: Arc::default(),
            user_cap,
        }
    }

    /// Calls of this kind running now.
    pub fn in_use(&self) -> usize {
        self.process_cap
            .max
            .saturating_sub(self.all.available_permits())
    }

    /// Counts a call of `who`; RESOURCE_EXHAUSTED naming the cap when the
    /// user or the process already runs as many as allowed.
    pub fn start(&self, who: &Caller) -> Result<Slot, ApiError> {
        let mut running = self
            .per_user
            .lock()
            .map_err(|_| ApiError::Internal(format!("the {} counter is poisoned", self.what)))?;
        let n = running.entry(who.id.clone()).or_default();
        if *n >= self.user_cap.max {
            return Err(ApiError::Quota {
                key: self.user_cap.key,
                subject: format!("users/{}", who.id),
                message: format!(
                    "you already have {} {} open, the most one user may ({}); close one or wait for one to finish",
                    self.user_cap.max, self.what, self.user_cap.key
                ),
            });
        }
        let permit = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Quota {
                key: self.process_cap.key,
                subject: "server".into(),
                message: format!(
                    "this server already serves {} {} ({}); try again shortly",
                    self.process_cap.max, self.what, self.process_cap.key
                ),
            })?;
        *n += 1;
        Ok(Slot {
            user: who.id.clone(),
            running: self.per_user.clone(),
            _permit: permit,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock()
            && let Some(n) = running.get_mut(&self.user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}
