//! Uploads: every file, segment, playlist, image and manifest a job writes goes to the
//! storage its request (or the service config) names: S3, Azure Blob, Google Cloud
//! Storage or a local directory. `config` resolves where; one store per provider does
//! the transfer; `queue` is the job's uploader (in order, retried with backoff, a backup
//! storage when the primary keeps failing, local copies removed only once an upload is
//! confirmed).

pub mod azure;
pub mod config;
#[cfg(feature = "cloud")]
pub mod gcs;
pub mod local;
pub(crate) mod queue;
#[cfg(feature = "cloud")]
pub mod s3;

pub use config::{Provider, StorageSpec};
use std::path::Path;
use std::sync::Arc;

/// Why an upload failed. `storage` names where (never a credential); `retry` says
/// whether trying again may help (a network error, a 5xx) or not (credentials refused,
/// no such bucket).
#[derive(Debug, Clone, thiserror::Error)]
#[error("upload to {storage} failed: {why}")]
pub struct UploadError {
    pub storage: String,
    pub why: String,
    pub retry: bool,
}

/// A place objects are put.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Puts the file at `path` under `key`; returns the object's location as LiveKit
    /// reports it.
    async fn put(&self, key: &str, path: &Path, content_type: &str) -> Result<String, UploadError>;
    /// Where, for logs and errors: provider and bucket.
    fn describe(&self) -> String;
}

/// The store for a spec. Cloud stores are built lazily by their SDKs (nothing connects here).
pub async fn open(spec: &StorageSpec) -> Result<Arc<dyn ObjectStore>, UploadError> {
    let store: Arc<dyn ObjectStore> = match &spec.provider {
        Provider::Local(c) => Arc::new(local::LocalStore::new(c)),
        Provider::Azure(c) => Arc::new(azure::AzureStore::new(c)?),
        #[cfg(feature = "cloud")]
        Provider::S3(c) => Arc::new(s3::S3Store::new(c).await),
        #[cfg(feature = "cloud")]
        Provider::Gcp(c) => Arc::new(gcs::GcsStore::new(c).await?),
        #[cfg(not(feature = "cloud"))]
        p @ (Provider::S3(_) | Provider::Gcp(_)) => {
            return Err(UploadError {
                storage: p.describe(),
                why: "this build has no S3 or GCS support (cargo feature `cloud`)".into(),
                retry: false,
            });
        }
    };
    Ok(store)
}

/// The object key for a file named `name` (relative to the output directory).
pub fn key(prefix: &str, name: &str) -> String {
    let name = name.trim_start_matches('/');
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") }
}

/// Content types as LiveKit sends them.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("mp4") => "video/mp4",
        Some("ogg") => "audio/ogg",
        Some("mp3") => "audio/mpeg",
        Some("ts") => "video/mp2t",
        Some("m3u8") => "application/x-mpegurl",
        Some("jpeg" | "jpg") => "image/jpeg",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// A URL path from an object key: each segment percent-encoded, slashes kept (as LiveKit's
/// locations are).
pub(crate) fn encode_key(key: &str) -> String {
    key.split('/').map(urlencoding).collect::<Vec<_>>().join("/")
}

fn urlencoding(s: &str) -> String {
    // RFC 3986 unreserved characters stay; everything else is %XX.
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_types() {
        assert_eq!(key("", "/a/b.mp4"), "a/b.mp4");
        assert_eq!(key("rec", "a/b.mp4"), "rec/a/b.mp4");
        assert_eq!(encode_key("a b/ç.ts"), "a%20b/%C3%A7.ts");
        assert_eq!(content_type(Path::new("x/y.m3u8")), "application/x-mpegurl");
    }
}
