//! Storage of the lake: S3 (any S3-compatible endpoint) or a local directory,
//! through `object_store`, behind a small blocking API.
//!
//! Every object is written whole and create-only (`PutMode::Create`): a write
//! retried after a lost answer finds its object already there, reads it back
//! and compares; equal bytes are a success, so a retry never duplicates or
//! overwrites. Transient failures are retried here with doubling backoff
//! (the client's own retries are off, so every retry is logged and counted).

use crate::metrics::Metrics;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// Where the lake is and how to write to it (`[lake]` of the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeSettings {
    /// `s3://bucket/prefix`, a local directory (or `file:///dir`); empty: no lake.
    pub url: String,
    /// S3 endpoint such as `http://127.0.0.1:9000`; empty: AWS (or `AWS_ENDPOINT_URL`).
    pub s3_endpoint: String,
    /// S3 region.
    pub s3_region: String,
    /// Flush a partition's buffer once its oldest record is this old (ms).
    pub flush_ms: u64,
    /// Flush a partition's buffer once its payloads reach this many bytes.
    pub flush_bytes: u64,
    /// Extra attempts of a failed storage call.
    pub retries: u32,
    /// Wait before the first retry; doubled each time, at most 30 s.
    pub backoff_ms: u64,
    /// Time-out of one storage call (ms).
    pub timeout_ms: u64,
}

impl Default for LakeSettings {
    fn default() -> Self {
        LakeSettings {
            url: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            flush_ms: 10_000,
            flush_bytes: 64 << 20,
            retries: 5,
            backoff_ms: 200,
            timeout_ms: 30_000,
        }
    }
}

/// A lake failure, saying whose fault it is and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The settings are wrong (the user's to fix).
    #[error("lake configuration: {0}")]
    Config(String),
    /// The storage failed after every retry (the outside system's; retrying later can help).
    #[error(
        "lake storage failed on {key} after {attempts} attempt(s): {source}; check the endpoint, bucket and credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    )]
    Store {
        /// The object.
        key: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        source: object_store::Error,
    },
    /// An object exists under the name with other bytes (never overwritten).
    #[error(
        "lake object {0} already exists with different content; it is kept as it is (object names are fixed by their source positions)"
    )]
    Conflict(String),
    /// An object is not what the lake writes.
    #[error("lake object {key} is unreadable: {why}; move it out of the lake and replay its hour")]
    Corrupt {
        /// The object.
        key: String,
        /// Why.
        why: String,
    },
}

/// What a create-only write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// Written now.
    Created,
    /// Already there with the same bytes (a retried write).
    Existed,
}

/// An open lake.
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    settings: LakeSettings,
    runtime: tokio::runtime::Runtime,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("url", &self.url).finish()
    }
}

impl Lake {
    /// Opens the lake of `settings.url`. S3 credentials come from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …), never
    /// from the configuration file.
    pub fn open(settings: &LakeSettings, metrics: Option<Arc<Metrics>>) -> Result<Lake, LakeError> {
        let url = settings.url.trim();
        if url.is_empty() {
            return Err(LakeError::Config(
                "no lake: set lake.url (SHOPFLOW_LAKE_URL) or --lake".into(),
            ));
        }
        let (store, prefix): (Arc<dyn ObjectStore>, String) =
            if let Some(rest) = url.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(LakeError::Config(format!(
                        "{url}: no bucket; write s3://bucket/prefix"
                    )));
                }
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&settings.s3_region)
                    .with_retry(RetryConfig {
                        max_retries: 0,
                        ..RetryConfig::default()
                    })
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(Duration::from_millis(settings.timeout_ms.max(1)))
                            .with_connect_timeout(Duration::from_millis(
                                settings.timeout_ms.clamp(1, 10_000),
                            )),
                    );
                if !settings.s3_endpoint.is_empty() {
                    builder = builder
                        .with_endpoint(&settings.s3_endpoint)
                        .with_allow_http(settings.s3_endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let store = builder
                    .build()
                    .map_err(|e| LakeError::Config(format!("{url}: {e}")))?;
                (Arc::new(store), prefix.trim_matches('/').to_owned())
            } else {
                let dir = url.strip_prefix("file://").unwrap_or(url);
                std::fs::create_dir_all(dir).map_err(|e| {
                    LakeError::Config(format!("cannot create the lake directory {dir}: {e}"))
                })?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| LakeError::Config(format!("{dir}: {e}")))?;
                (Arc::new(store), String::new())
            };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lake-io")
            .enable_all()
            .build()
            .map_err(|e| LakeError::Config(format!("cannot start the lake's I/O threads: {e}")))?;
        Ok(Lake {
            store,
            prefix,
            url: url.to_owned(),
            settings: settings.clone(),
            runtime,
            metrics,
        })
    }

    /// The lake's URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The settings the lake was opened with.
    pub fn settings(&self) -> &LakeSettings {
        &self.settings
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn count(&self, name: &'static str, op: &str) {
        if let Some(m) = &self.metrics {
            m.add(name, &[("op", op)], 1);
        }
    }

    /// Runs `call` with retries and backoff.
    fn retry<T, F, Fut>(&self, op: &'static str, key: &str, call: F) -> Result<T, LakeError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, object_store::Error>>,
    {
        self.runtime
            .block_on(with_retries(self.policy(), op, key.to_owned(), call))
    }

    fn policy(&self) -> Policy {
        Policy {
            retries: self.settings.retries,
            backoff_ms: self.settings.backoff_ms.max(1),
            metrics: self.metrics.clone(),
        }
    }

    /// Writes `bytes` under `key` unless it exists; an existing object with
    /// the same bytes counts as written, one with other bytes is a
    /// [`LakeError::Conflict`] (and is left alone).
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<Put, LakeError> {
        let path = self.path(key);
        let opts = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let result = self.retry("put", key, || {
            self.store.put_opts(&path, bytes.clone().into(), opts())
        });
        match result {
            Ok(_) => {
                self.count("shopflow_lake_objects_total", "put");
                if let Some(m) = &self.metrics {
                    m.add("shopflow_lake_bytes_total", &[], bytes.len() as u64);
                }
                Ok(Put::Created)
            }
            Err(LakeError::Store {
                source: object_store::Error::AlreadyExists { .. },
                ..
            }) => {
                let existing = self.get(key)?;
                if existing == bytes {
                    Ok(Put::Existed)
                } else {
                    Err(LakeError::Conflict(key.to_owned()))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` under `key`, replacing any object there (atomically:
    /// readers see the old or the new object, never a mix). For derived
    /// objects only (the curated layer); the raw layer is create-only.
    pub fn overwrite(&self, key: &str, bytes: Bytes) -> Result<(), LakeError> {
        let path = self.path(key);
        self.retry("put", key, || self.store.put(&path, bytes.clone().into()))?;
        self.count("shopflow_lake_objects_total", "put");
        if let Some(m) = &self.metrics {
            m.add("shopflow_lake_bytes_total", &[], bytes.len() as u64);
        }
        Ok(())
    }

    /// Reads a whole object.
    pub fn get(&self, key: &str) -> Result<Bytes, LakeError> {
        let path = self.path(key);
        self.retry("get", key, || async {
            self.store.get(&path).await?.bytes().await
        })
    }

    /// Whether an object exists.
    pub fn exists(&self, key: &str) -> Result<bool, LakeError> {
        let path = self.path(key);
        match self.retry("head", key, || self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(LakeError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object under `prefix` (a key prefix ending in `/`), as
    /// (key relative to the lake, size), sorted by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, LakeError> {
        let path = self.path(prefix.trim_end_matches('/'));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out: Vec<(String, u64)> = self
            .retry("list", prefix, || async {
                use futures::TryStreamExt;
                self.store.list(Some(&path)).try_collect::<Vec<_>>().await
            })
            .map(|metas| {
                metas
                    .into_iter()
                    .map(|m| {
                        let key = m.location.to_string();
                        (key.strip_prefix(&strip).unwrap_or(&key).to_owned(), m.size)
                    })
                    .collect()
            })
            .or_else(|e| match e {
                LakeError::Store {
                    source: object_store::Error::NotFound { .. },
                    ..
                } => Ok(Vec::new()),
                e => Err(e),
            })?;
        out.sort();
        Ok(out)
    }

    /// Reads many objects at once (up to 8 in flight), in the order given.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Bytes>, LakeError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(8) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|k| {
                    let (store, path) = (self.store.clone(), self.path(k));
                    self.runtime
                        .spawn(with_retries(self.policy(), "get", k.clone(), move || {
                            let (store, path) = (store.clone(), path.clone());
                            async move { store.get(&path).await?.bytes().await }
                        }))
                })
                .collect();
            for handle in handles {
                let got = self
                    .runtime
                    .block_on(handle)
                    .map_err(|e| LakeError::Config(format!("a lake read task failed: {e}")))??;
                out.push(got);
            }
        }
        Ok(out)
    }
}

/// How calls are retried, and where retries are counted.
#[derive(Clone)]
struct Policy {
    retries: u32,
    backoff_ms: u64,
    metrics: Option<Arc<Metrics>>,
}

/// Runs `call` until it succeeds, fails for good (not found, already
/// exists), or has failed `retries + 1` times; waits from `backoff_ms`,
/// doubling to at most 30 s. Every retry is logged and counted.
async fn with_retries<T, F, Fut>(
    policy: Policy,
    op: &'static str,
    key: String,
    call: F,
) -> Result<T, LakeError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, object_store::Error>>,
{
    let count = |name: &'static str| {
        if let Some(m) = &policy.metrics {
            m.add(name, &[("op", op)], 1);
        }
    };
    let mut wait = Duration::from_millis(policy.backoff_ms);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let final_answer = matches!(
            error,
            object_store::Error::NotFound { .. } | object_store::Error::AlreadyExists { .. }
        );
        if final_answer || attempt > policy.retries {
            if !final_answer {
                count("shopflow_lake_errors_total");
            }
            return Err(LakeError::Store {
                key,
                attempts: attempt,
                source: error,
            });
        }
        count("shopflow_lake_retries_total");
        tracing::warn!(op, key, attempt, error = %error, "lake call failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}
