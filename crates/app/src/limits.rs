//! How many uploads one server process receives at once, in all and per
//! user. A guard counts an upload until it is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::error::ApiError;
use crate::identity::Caller;

#[derive(Clone)]
pub struct UploadLimits {
    all: Arc<Semaphore>,
    max_all: usize,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    max_per_user: usize,
}

/// One running upload: counted against its user and the process until dropped.
pub struct UploadGuard {
    user: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
    _permit: OwnedSemaphorePermit,
}

impl UploadLimits {
    pub fn new(config: &Config) -> Self {
        Self {
            all: Arc::new(Semaphore::new(config.max_concurrent_uploads)),
            max_all: config.max_concurrent_uploads,
            per_user: Arc::default(),
            max_per_user: config.max_uploads_per_user,
        }
    }

    /// Counts an upload of `who`; RESOURCE_EXHAUSTED naming the limit when
    /// the user or the process already runs as many as allowed.
    pub fn start(&self, who: &Caller) -> Result<UploadGuard, ApiError> {
        let mut running = self
            .per_user
            .lock()
            .map_err(|_| ApiError::Internal("the upload counter is poisoned".into()))?;
        let n = running.entry(who.id.clone()).or_default();
        if *n >= self.max_per_user {
            return Err(ApiError::ResourceExhausted(format!(
                "you already run {} uploads, the most one user may (IMPORTS_MAX_UPLOADS_PER_USER); wait for one to finish",
                self.max_per_user
            )));
        }
        let permit = self.all.clone().try_acquire_owned().map_err(|_| {
            ApiError::ResourceExhausted(format!(
                "this server already receives {} uploads (IMPORTS_MAX_CONCURRENT_UPLOADS); try again shortly",
                self.max_all
            ))
        })?;
        *n += 1;
        Ok(UploadGuard {
            user: who.id.clone(),
            running: self.per_user.clone(),
            _permit: permit,
        })
    }
}

impl Drop for UploadGuard {
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
