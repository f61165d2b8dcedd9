//! Amazon S3 and S3-compatible services, through the official SDK (`aws-sdk-s3`).
//! Files up to 64 MiB go in one PutObject; larger ones as a multipart upload of 16 MiB
//! parts (or more, to stay within S3's 10,000 parts), read from disk part by part.

use super::config::S3Config;
use super::{ObjectStore, UploadError, encode_key};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::path::Path;
use std::time::Duration;

const SINGLE_PUT_MAX: u64 = 64 << 20;
const MIN_PART: u64 = 16 << 20;

/// The object's bucket, key and headers (content type, LiveKit's `inline` disposition unless
/// configured, metadata, tagging) on a PutObject or CreateMultipartUpload request: two builder
/// types with the same setters and no trait in common.
macro_rules! with_object_headers {
    ($request:expr, $c:expr, $key:expr, $content_type:expr) => {{
        let disposition = if $c.content_disposition.is_empty() { "inline" } else { &$c.content_disposition };
        let mut r = $request.bucket(&$c.bucket).key($key).content_type($content_type).content_disposition(disposition);
        for (k, v) in &$c.metadata {
            r = r.metadata(k, v);
        }
        if !$c.tagging.is_empty() {
            r = r.tagging(&$c.tagging);
        }
        r
    }};
}

pub(crate) struct S3Store {
    client: aws_sdk_s3::Client,
    c: S3Config,
}

impl S3Store {
    /// A client for `c`. Without keys it takes the AWS default credential chain (environment,
    /// profile, web identity, container and instance roles), as LiveKit's egress does; without a
    /// region it asks the bucket where it lives (HeadBucket's `x-amz-bucket-region`), and falls
    /// back to `us-east-1` when it cannot tell.
    pub(crate) async fn new(c: &S3Config) -> Self {
        let credentials = if c.access_key.expose().is_empty() {
            let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder().build().await;
            aws_sdk_s3::config::SharedCredentialsProvider::new(chain)
        } else {
            let token = Some(c.session_token.expose().to_string()).filter(|t| !t.is_empty());
            let keys = Credentials::new(c.access_key.expose(), c.secret.expose(), token, None, "tessera-config");
            aws_sdk_s3::config::SharedCredentialsProvider::new(keys)
        };
        let client = |region: &str| {
            let mut retry =
                RetryConfig::standard().with_max_attempts(if c.max_retries == 0 { 3 } else { c.max_retries });
            if let Some(d) = c.max_retry_delay {
                retry = retry.with_max_backoff(d);
            }
            if let Some(d) = c.min_retry_delay {
                retry = retry.with_initial_backoff(d);
            }
            let mut b = aws_sdk_s3::config::Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.to_string()))
                .force_path_style(c.force_path_style)
                .retry_config(retry)
                .credentials_provider(credentials.clone())
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .operation_attempt_timeout(Duration::from_secs(300))
                        .build(),
                );
            if !c.endpoint.is_empty() {
                // S3-compatible services rarely take the SDK's default CRC32 trailers (LiveKit does the same).
                b = b.endpoint_url(&c.endpoint).request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
            }
            aws_sdk_s3::Client::from_conf(b.build())
        };
        let mut c = c.clone();
        if c.region.is_empty() {
            c.region = bucket_region(&client("us-east-1"), &c.bucket).await.unwrap_or_else(|| "us-east-1".into());
            tracing::debug!(bucket = %c.bucket, region = %c.region, "S3 bucket's region looked up");
        }
        Self { client: client(&c.region), c }
    }

    /// LiveKit's location: `https://{bucket}.s3.amazonaws.com/{key}`, or at the endpoint
    /// (path style: `{endpoint}/{bucket}/{key}`). An endpoint keeps its own scheme, so an
    /// http:// service gives a URL that works.
    fn location(&self, key: &str) -> String {
        let key = encode_key(key);
        let (scheme, host) = match self.c.endpoint.split_once("://") {
            Some((s, h)) => (s, h.trim_end_matches('/')),
            None => ("https", "s3.amazonaws.com"),
        };
        if self.c.force_path_style {
            format!("{scheme}://{host}/{}/{key}", self.c.bucket)
        } else {
            format!("{scheme}://{}.{host}/{key}", self.c.bucket)
        }
    }

    fn fail<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        what: &str,
        e: SdkError<E, HttpResponse>,
    ) -> UploadError {
        let (why, retry) = match &e {
            SdkError::ServiceError(s) => {
                let status = s.raw().status().as_u16();
                let code = s.err().code().unwrap_or("");
                let msg = s.err().message().unwrap_or("");
                (
                    format!("{what}: HTTP {status} {code}: {msg}").trim_end_matches(": ").to_string(),
                    status >= 500 || status == 429 || status == 408,
                )
            }
            SdkError::ConstructionFailure(_) => (format!("{what}: {}", DisplayErrorContext(&e)), false),
            _ => (format!("{what}: {}", DisplayErrorContext(&e)), true),
        };
        UploadError { storage: self.describe(), why, retry }
    }

    fn put_request(
        &self,
        key: &str,
        content_type: &str,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        with_object_headers!(self.client.put_object(), self.c, key, content_type)
    }

    async fn multipart(&self, key: &str, path: &Path, size: u64, content_type: &str) -> Result<(), UploadError> {
        let create = with_object_headers!(self.client.create_multipart_upload(), self.c, key, content_type);
        let created = create.send().await.map_err(|e| self.fail("starting a multipart upload", e))?;
        let id = created.upload_id().unwrap_or_default().to_string();
        let part = MIN_PART.max(size.div_ceil(9_000));
        let mut parts = Vec::new();
        let result: Result<(), UploadError> = async {
            let mut offset = 0;
            while offset < size {
                let len = part.min(size - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| UploadError {
                    storage: self.describe(),
                    why: format!("reading {}: {e}", path.display()),
                    retry: false,
                })?;
                let n = parts.len() as i32 + 1;
                let done = self
                    .client
                    .upload_part()
                    .bucket(&self.c.bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| self.fail("uploading a part", e))?;
                parts.push(CompletedPart::builder().part_number(n).set_e_tag(done.e_tag().map(String::from)).build());
                offset += len;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.c.bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(|e| self.fail("completing a multipart upload", e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self.client.abort_multipart_upload().bucket(&self.c.bucket).key(key).upload_id(&id).send().await;
        }
        result
    }
}

/// Where a bucket lives: HeadBucket answers it in `x-amz-bucket-region`, also when it refuses
/// (a 301 from the wrong region, a 403 for a bucket one may write but not read).
async fn bucket_region(client: &aws_sdk_s3::Client, bucket: &str) -> Option<String> {
    let header = |r: &HttpResponse| r.headers().get("x-amz-bucket-region").map(str::to_string);
    match client.head_bucket().bucket(bucket).send().await {
        Ok(out) => out.bucket_region().map(str::to_string),
        Err(SdkError::ServiceError(e)) => header(e.raw()),
        Err(SdkError::ResponseError(e)) => header(e.raw()),
        Err(_) => None,
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, path: &Path, content_type: &str) -> Result<String, UploadError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| UploadError {
                storage: self.describe(),
                why: format!("cannot read {}: {e}", path.display()),
                retry: false,
            })?
            .len();
        if size > SINGLE_PUT_MAX {
            self.multipart(key, path, size, content_type).await?;
        } else {
            let body = ByteStream::from_path(path).await.map_err(|e| UploadError {
                storage: self.describe(),
                why: format!("cannot read {}: {e}", path.display()),
                retry: false,
            })?;
            self.put_request(key, content_type).body(body).send().await.map_err(|e| self.fail("PutObject", e))?;
        }
        Ok(self.location(key))
    }

    fn describe(&self) -> String {
        super::Provider::S3(self.c.clone()).describe()
    }
}
