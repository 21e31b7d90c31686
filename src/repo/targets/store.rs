//! The one place where debstage talks to an S3-compatible store. `object_store` does the
//! signing, retries, conditional headers and listing; its API is async, so this module
//! owns a small current-thread tokio runtime and offers the rest of the program plain
//! blocking calls.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Once};

use anyhow::{anyhow, Context, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, UpdateVersion,
};
use sha2::{Digest, Sha256};

use crate::repo::targets::config::{TargetConfig, TargetUrl};
use crate::repo::targets::credentials::{self, CredentialSource};
use crate::repo::targets::redact::redact;

/// The user metadata key that carries an object's SHA256 (`x-amz-meta-sha256`), so
/// that an object found on the store can be compared with a local file without its bytes.
const SHA256_METADATA: &str = "sha256";

/// How many requests are in flight at once during an upload phase.
pub(crate) const PARALLEL_REQUESTS: usize = 16;

/// A publish target's bucket and prefix, opened for blocking calls.
pub(crate) struct Store {
    runtime: tokio::runtime::Runtime,
    client: Arc<AmazonS3>,
    url: TargetUrl,
    /// How the target is shown in messages: `name (s3://bucket/prefix at endpoint)`,
    /// with any secret in the URLs hidden.
    pub(crate) description: String,
    /// Where the client's credentials came from, named when the store refuses them.
    credentials: CredentialSource,
}

/// An object about to be written.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    /// The key under the target's prefix (`dists/test/InRelease`).
    pub(crate) key: String,
    /// The local file that holds the bytes (read when the request is made, so that a
    /// cold publication of a large pool does not hold it in memory).
    pub(crate) file: std::path::PathBuf,
    /// Their SHA256, hex, when the caller hashed the file already; else it is taken from
    /// the bytes read for the request (a file not on record is written whatever it
    /// holds, so a cold copy reads each file once).
    pub(crate) sha256: Option<String>,
    /// Cache-Control header.
    pub(crate) cache_control: String,
    /// The Content-Type header, from the key and the bytes.
    pub(crate) content_type: fn(&str, &[u8]) -> &'static str,
    /// Create only (never overwrite): pool objects.
    pub(crate) create_only: bool,
}

/// What a create-only write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    /// The object was written.
    Written,
    /// The key already held an object (with conditional writes: the store refused).
    Exists,
}

/// How create-only uploads (pool objects) keep from overwriting an object on the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateOnly {
    /// The store refuses the write when the key exists (`If-None-Match: *`).
    Conditional,
    /// A HEAD just before each write (another writer could slip in between: that is
    /// what the target's `conditional_writes = false` accepts).
    Look,
    /// The caller listed the keys before the phase and left out the ones found (the
    /// same acceptance, over the phase instead of one request).
    Listed,
}

/// An object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// A small object read with its version, for compare-and-swap.
#[derive(Debug, Clone)]
pub(crate) struct Versioned {
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
    /// Its ETag, which a conditional update names.
    pub(crate) e_tag: Option<String>,
}

/// Why a conditional write did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Conditional {
    /// The key exists (create) or changed since it was read (update).
    #[error("the object changed or exists")]
    Lost,
    /// Any other failure.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Which part of a target's bucket a [`Store`] reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    /// The published tree, under the target's prefix: what clients read.
    Published,
    /// debstage's own objects, outside the published tree
    /// ([`crate::repo::targets::config::TargetUrl::private_area`]).
    Private,
    /// Where those objects were kept before, inside the published tree (`<prefix>/.debstage`).
    Legacy,
}

/// rustls needs one process-wide crypto provider; reqwest is built without one so that
/// only `ring` (not aws-lc) is compiled.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only when a provider is installed already, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Store {
    /// Opens the target's published tree with the credentials of the environment
    /// (`AWS_*`) or the profile files.
    pub(crate) fn open(config: &TargetConfig) -> Result<Store> {
        Store::open_area(config, Area::Published)
    }

    /// Opens one area of the target's bucket; keys are relative to that area.
    pub(crate) fn open_area(config: &TargetConfig, area: Area) -> Result<Store> {
        install_crypto_provider();
        let published = config.parsed_url()?;
        let url = match area {
            Area::Published => published,
            Area::Private => published.private_area(),
            Area::Legacy => published.legacy_area(),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_region(config.region.clone())
            .with_virtual_hosted_style_request(!config.path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let (found, credentials) = credentials::select()?;
        if let Some(found) = found {
            builder = builder
                .with_access_key_id(found.access_key_id)
                .with_secret_access_key(found.secret_access_key);
            if let Some(token) = found.session_token {
                builder = builder.with_token(token);
            }
        }
        let description = redact(&format!(
            "{} ({}{})",
            config.name,
            match area {
                Area::Published => config.url.clone(),
                Area::Private | Area::Legacy => url.display(),
            },
            config
                .endpoint
                .as_deref()
                .map(|endpoint| format!(" at {endpoint}"))
                .unwrap_or_default()
        ));
        let client = builder.build().map_err(|error| {
            store_error(error, &credentials)
                .context(format!("publish target {description}: cannot be opened"))
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime of the S3 client")?;
        Ok(Store {
            runtime,
            client: Arc::new(client),
            url,
            description,
            credentials,
        })
    }

    fn path(&self, key: &str) -> StorePath {
        StorePath::from(self.url.key(key))
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Writes `uploads` with up to [`PARALLEL_REQUESTS`] in flight, calling `done` on
    /// this thread for each one finished (in completion order), with the SHA256 of its
    /// bytes. A create-only upload whose key exists is reported as [`Written::Exists`],
    /// not written.
    pub(crate) fn put_all(
        &self,
        uploads: Vec<Upload>,
        create_only: CreateOnly,
        mut done: impl FnMut(&Upload, &str, Written) -> Result<()>,
    ) -> Result<()> {
        let credentials = &self.credentials;
        let client = self.client.clone();
        let url = self.url.clone();
        let description = self.description.clone();
        self.block_on(async move {
            let mut stream = futures::stream::iter(uploads.into_iter().map(|upload| {
                let client = client.clone();
                let path = StorePath::from(url.key(&upload.key));
                async move {
                    let written = put_one(&client, &path, &upload, create_only, credentials).await;
                    (upload, written)
                }
            }))
            .buffer_unordered(PARALLEL_REQUESTS);
            while let Some((upload, written)) = stream.next().await {
                let (written, sha256) = written.with_context(|| {
                    format!(
                        "publish target {description}: {} cannot be written",
                        upload.key
                    )
                })?;
                done(&upload, &sha256, written)?;
            }
            Ok(())
        })
    }

    /// The SHA256 an object's metadata records, and its size; `None` when absent.
    pub(crate) fn head(&self, key: &str) -> Result<Option<(u64, Option<String>)>> {
        let credentials = &self.credentials;
        let path = self.path(key);
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.block_on(self.client.get_opts(&path, options)) {
            Ok(result) => {
                let sha256 = result
                    .attributes
                    .get(&Attribute::Metadata(SHA256_METADATA.into()))
                    .map(|value| value.as_ref().to_string());
                Ok(Some((result.meta.size, sha256)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(store_error(error, credentials))
                .with_context(|| format!("publish target {}: {key}", self.description)),
        }
    }

    /// The newest `Last-Modified` (Unix seconds, the store's clock) among `keys` that
    /// exist; the heads are made side by side.
    pub(crate) fn newest_modified(&self, keys: &[String]) -> Result<Option<i64>> {
        let credentials = &self.credentials;
        let client = self.client.clone();
        let url = self.url.clone();
        let description = self.description.clone();
        let seconds = self.block_on(async move {
            futures::stream::iter(keys.iter().map(|key| {
                let client = client.clone();
                let path = StorePath::from(url.key(key));
                let description = description.clone();
                async move {
                    match client.head(&path).await {
                        Ok(meta) => Ok(Some(meta.last_modified.timestamp())),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(error) => Err(store_error(error, credentials)
                            .context(format!("publish target {description}: {key}"))),
                    }
                }
            }))
            .buffer_unordered(PARALLEL_REQUESTS)
            .try_collect::<Vec<Option<i64>>>()
            .await
        })?;
        Ok(seconds.into_iter().flatten().max())
    }

    /// The store's clock, in Unix seconds: the `Last-Modified` it gives a small object
    /// written now under `key`.
    pub(crate) fn clock(&self, key: &str) -> Result<i64> {
        let credentials = &self.credentials;
        let path = self.path(key);
        let read = self.block_on(async {
            self.client
                .put(&path, PutPayload::from_static(b"debstage clock probe\n"))
                .await?;
            self.client.head(&path).await
        });
        read.map(|meta| meta.last_modified.timestamp())
            .map_err(|error| store_error(error, credentials))
            .with_context(|| {
                format!(
                    "publish target {}: {key} (written to read the store's clock)",
                    self.description
                )
            })
    }

    /// Reads an object whole; `None` when absent.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let credentials = &self.credentials;
        let path = self.path(key);
        let read = self.block_on(async {
            let result = self.client.get(&path).await?;
            let e_tag = result.meta.e_tag.clone();
            let bytes = result.bytes().await?;
            Ok::<_, object_store::Error>(Versioned {
                bytes: bytes.to_vec(),
                e_tag,
            })
        });
        match read {
            Ok(versioned) => Ok(Some(versioned)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(store_error(error, credentials)).with_context(|| {
                format!("publish target {}: {key} cannot be read", self.description)
            }),
        }
    }

    /// Creates `key` only if it does not exist (`If-None-Match: *`); returns its ETag.
    pub(crate) fn create(&self, key: &str, bytes: Vec<u8>) -> Result<Option<String>, Conditional> {
        self.conditional_put(key, bytes, PutMode::Create)
    }

    /// Replaces `key` only if its ETag is still `e_tag` (`If-Match`); returns the new ETag.
    pub(crate) fn replace(
        &self,
        key: &str,
        bytes: Vec<u8>,
        e_tag: Option<String>,
    ) -> Result<Option<String>, Conditional> {
        self.conditional_put(
            key,
            bytes,
            PutMode::Update(UpdateVersion {
                e_tag,
                version: None,
            }),
        )
    }

    fn conditional_put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<Option<String>, Conditional> {
        let credentials = &self.credentials;
        let path = self.path(key);
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self.block_on(
            self.client
                .put_opts(&path, PutPayload::from(bytes), options),
        ) {
            Ok(result) => Ok(result.e_tag),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Err(Conditional::Lost),
            Err(error) => Err(Conditional::Failed(
                store_error(error, credentials)
                    .context(format!("publish target {}: {key}", self.description)),
            )),
        }
    }

    /// Deletes `keys` (a missing key is no error).
    pub(crate) fn delete_all(&self, keys: &[String]) -> Result<()> {
        let credentials = &self.credentials;
        let client = self.client.clone();
        let url = self.url.clone();
        let description = self.description.clone();
        self.block_on(async move {
            futures::stream::iter(keys.iter().map(|key| {
                let client = client.clone();
                let path = StorePath::from(url.key(key));
                let description = description.clone();
                async move {
                    match client.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(error) => Err(store_error(error, credentials).context(format!(
                            "publish target {description}: {key} cannot be deleted"
                        ))),
                    }
                }
            }))
            .buffer_unordered(PARALLEL_REQUESTS)
            .try_collect::<Vec<()>>()
            .await
        })?;
        Ok(())
    }

    /// Every object under the target's prefix, by key relative to it.
    pub(crate) fn list(&self) -> Result<BTreeMap<String, Listed>> {
        self.list_under(None)
    }

    /// Every object under `directory` of the target's prefix (`pool`), or under the whole
    /// prefix, by key relative to the prefix.
    pub(crate) fn list_under(&self, directory: Option<&str>) -> Result<BTreeMap<String, Listed>> {
        let credentials = &self.credentials;
        let prefix = match directory {
            Some(directory) => Some(self.path(directory)),
            None => self.url.prefix_path(),
        };
        let listed = self.block_on(async {
            self.client
                .list(prefix.as_ref())
                .try_collect::<Vec<_>>()
                .await
        });
        let listed = listed
            .map_err(|error| store_error(error, credentials))
            .with_context(|| format!("publish target {}: cannot be listed", self.description))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                self.url
                    .relative(meta.location.as_ref())
                    .map(|key| (key, Listed { size: meta.size }))
            })
            .collect())
    }
}

async fn put_one(
    client: &AmazonS3,
    path: &StorePath,
    upload: &Upload,
    create_only: CreateOnly,
    credentials: &CredentialSource,
) -> Result<(Written, String)> {
    let bytes = fs_err::read(&upload.file)?;
    let sha256 = match &upload.sha256 {
        Some(sha256) => sha256.clone(),
        None => hex::encode(Sha256::digest(&bytes)),
    };
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::CacheControl,
        AttributeValue::from(upload.cache_control.clone()),
    );
    attributes.insert(
        Attribute::ContentType,
        AttributeValue::from((upload.content_type)(&upload.key, &bytes)),
    );
    attributes.insert(
        Attribute::Metadata(SHA256_METADATA.into()),
        AttributeValue::from(sha256.clone()),
    );
    if upload.create_only && create_only == CreateOnly::Look {
        match client.head(path).await {
            Ok(_) => return Ok((Written::Exists, sha256)),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(store_error(error, credentials)),
        }
    }
    let mode = if upload.create_only && create_only == CreateOnly::Conditional {
        PutMode::Create
    } else {
        PutMode::Overwrite
    };
    let options = PutOptions {
        mode,
        attributes,
        ..PutOptions::default()
    };
    match client
        .put_opts(path, PutPayload::from(bytes), options)
        .await
    {
        Ok(_) => Ok((Written::Written, sha256)),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok((Written::Exists, sha256)),
        Err(error) => Err(store_error(error, credentials)),
    }
}

/// An error of the store client as a message: its chain with any secret of a URL hidden
/// (the client echoes the request URL), and for a refusal (401, 403) which credentials
/// were sent and what to check.
fn store_error(error: object_store::Error, credentials: &CredentialSource) -> anyhow::Error {
    let refused = matches!(
        error,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    );
    // The client's errors repeat their source in their own text: each cause is added
    // only when it says something new.
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !chain.contains(&cause_text) {
            chain.push_str(": ");
            chain.push_str(&cause_text);
        }
        source = cause.source();
    }
    let text = redact(&chain);
    // Without keys the client asks the instance metadata (IMDS) for a role's; its
    // failure is the credentials' too.
    let metadata = text.contains("/latest/api/token") || text.contains("/latest/meta-data");
    match credentials {
        CredentialSource::None { .. } if refused || metadata => anyhow!(
            "{text}; credentials used: {credentials}, so the client asked the instance \
             metadata for a role's{}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             AWS_PROFILE and a credentials file (AWS_SHARED_CREDENTIALS_FILE)",
            if metadata { " and that failed" } else { "" }
        ),
        CredentialSource::Environment { .. } | CredentialSource::Profile { .. } if refused => {
            anyhow!(
                "{text}; the store refused the credentials used: {credentials}; check that \
                 this key exists on this store (the endpoint and region), that its secret is \
                 the one given, and that its policy allows reading, writing, deleting and \
                 listing under the target's prefix"
            )
        }
        _ => anyhow!(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: &str) -> object_store::Error {
        object_store::Error::PermissionDenied {
            path: "apt/dists/test/InRelease".into(),
            source: format!(
                "{status} for url (http://AKIA1:TOPSECRET@127.0.0.1:9000/apt/dists/test/\
                 InRelease?X-Amz-Signature=SIGNATURE)"
            )
            .into(),
        }
    }

    #[test]
    fn a_refusal_names_the_credentials_used_and_what_to_check() {
        let source = CredentialSource::Profile {
            file: "/home/ci/.aws/credentials".into(),
            profile: "ci".into(),
            access_key_id: "AKIA2".into(),
        };
        let text = format!("{:#}", store_error(refused("403 Forbidden"), &source));
        assert!(
            !text.contains("TOPSECRET") && !text.contains("SIGNATURE"),
            "{text}"
        );
        assert!(
            text.contains("http://***@127.0.0.1:9000/apt/dists/test/InRelease?X-Amz-Signature=***"),
            "{text}"
        );
        assert!(
            text.contains(
                "the store refused the credentials used: profile [ci] of \
                 /home/ci/.aws/credentials (aws_access_key_id AKIA2); check that this key \
                 exists on this store"
            ),
            "{text}"
        );
        let none = CredentialSource::None {
            file: None,
            profile: "default".into(),
        };
        let text = format!("{:#}", store_error(refused("403 Forbidden"), &none));
        assert!(
            text.contains("credentials used: none (no AWS_ACCESS_KEY_ID")
                && text.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{text}"
        );
    }

    #[test]
    fn other_errors_are_redacted_without_a_word_on_credentials() {
        let source = CredentialSource::Environment {
            access_key_id: "AKIA1".into(),
        };
        let error = object_store::Error::Generic {
            store: "S3",
            source: "error sending request for url (https://AKIA1:TOPSECRET@host/apt)".into(),
        };
        let text = format!("{:#}", store_error(error, &source));
        assert!(text.contains("https://***@host/apt"), "{text}");
        assert!(
            !text.contains("TOPSECRET") && !text.contains("credentials"),
            "{text}"
        );
    }
}
