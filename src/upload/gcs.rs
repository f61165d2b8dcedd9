//! Google Cloud Storage through Google's official crate (`google-cloud-storage`), with a
//! service account's credentials.json (or the machine's default credentials). Uploads
//! stream the file; above 16 MiB they are resumable. At a custom endpoint (an emulator,
//! or STORAGE_EMULATOR_HOST as Google's clients read it) uploads are single requests:
//! emulators build the resumable session's URL from a Host header the crate sends
//! without its port.

use super::config::GcpConfig;
use super::{ObjectStore, UploadError, encode_key};
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;
use std::path::Path;

pub(crate) struct GcsStore {
    client: Storage,
    bucket: String,
    /// The custom endpoint, if any (without a trailing slash).
    endpoint: Option<String>,
}

impl GcsStore {
    pub(crate) async fn new(c: &GcpConfig) -> Result<Self, UploadError> {
        let describe = format!("GCS bucket {:?}", c.bucket);
        let fail = |why: String| UploadError { storage: describe.clone(), why, retry: false };
        let endpoint = Some(c.endpoint.clone())
            .filter(|e| !e.is_empty())
            .or_else(|| {
                std::env::var("STORAGE_EMULATOR_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .map(|h| if h.contains("://") { h } else { format!("http://{h}") })
            })
            .map(|e| e.trim_end_matches('/').to_string());
        let credentials = if c.credentials_json.expose().is_empty() {
            if endpoint.is_some() {
                google_cloud_auth::credentials::anonymous::Builder::new().build()
            } else {
                google_cloud_auth::credentials::Builder::default()
                    .build()
                    .map_err(|e| fail(format!("no credentials_json and no default credentials: {e}")))?
            }
        } else {
            let v: serde_json::Value = serde_json::from_str(c.credentials_json.expose())
                .map_err(|_| fail("credentials_json is not JSON".into()))?;
            google_cloud_auth::credentials::service_account::Builder::new(v)
                .build()
                .map_err(|e| fail(format!("credentials_json is not a usable service account: {e}")))?
        };
        let mut b =
            Storage::builder().with_credentials(credentials).with_retry_policy(RetryableErrors.with_attempt_limit(3));
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e.clone());
        }
        let client = b.build().await.map_err(|e| fail(format!("cannot build the client: {e}")))?;
        Ok(Self { client, bucket: c.bucket.clone(), endpoint })
    }

    /// LiveKit's location, `https://{bucket}.storage.googleapis.com/{key}`; at a custom
    /// endpoint, `{endpoint}/{bucket}/{key}`.
    fn location(&self, key: &str) -> String {
        match &self.endpoint {
            Some(e) => format!("{e}/{}/{}", self.bucket, encode_key(key)),
            None => format!("https://{}.storage.googleapis.com/{}", self.bucket, encode_key(key)),
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for GcsStore {
    async fn put(&self, key: &str, path: &Path, content_type: &str) -> Result<String, UploadError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| UploadError {
            storage: self.describe(),
            why: format!("cannot read {}: {e}", path.display()),
            retry: false,
        })?;
        let mut w = self
            .client
            .write_object(format!("projects/_/buckets/{}", self.bucket), key, file)
            .set_content_type(content_type);
        if self.endpoint.is_some() {
            w = w.with_resumable_upload_threshold(usize::MAX);
        }
        w.send_unbuffered().await.map_err(|e| {
            let status = e.http_status_code();
            let retry = match status {
                Some(s) => s >= 500 || s == 429 || s == 408,
                None => !e.is_authentication() && !e.is_binding() && !e.is_serialization(),
            };
            let why = match status {
                Some(s) => format!("HTTP {s}: {e}"),
                None => e.to_string(),
            };
            UploadError { storage: self.describe(), why, retry }
        })?;
        Ok(self.location(key))
    }

    fn describe(&self) -> String {
        format!("GCS bucket {:?}", self.bucket)
    }
}
