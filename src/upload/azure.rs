//! Azure Blob Storage with an account name and key, as LiveKit's config gives them.
//!
//! Written here on reqwest: the official `azure_storage_blob` crate authenticates only
//! with Entra ID tokens or SAS URLs, not an account key, so the Shared Key signature
//! (HMAC-SHA256 over the canonical request, as Azure's REST documentation specifies) is
//! made here. Small files go in one Put Blob; large ones in 8 MiB Put Blocks and a Put
//! Block List, so a long recording is never held in memory whole.

use super::config::AzureConfig;
use super::{ObjectStore, UploadError, encode_key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use std::path::Path;
use tokio::io::AsyncReadExt;

const VERSION: &str = "2020-04-08";
/// Above this a file goes in blocks.
const SINGLE_PUT_MAX: u64 = 64 << 20;
const BLOCK: usize = 8 << 20;

pub(crate) struct AzureStore {
    account: String,
    key: Vec<u8>,
    container: String,
    /// Base URL of the blob service, without a trailing slash.
    base: String,
    http: reqwest::Client,
}

impl AzureStore {
    pub(crate) fn new(c: &AzureConfig) -> Result<Self, UploadError> {
        let describe = format!("Azure container {:?} of account {:?}", c.container_name, c.account_name);
        let key = B64.decode(c.account_key.expose().trim()).map_err(|_| UploadError {
            storage: describe.clone(),
            why: "account_key is not base64 (it should be the storage account's access key)".into(),
            retry: false,
        })?;
        let base = if c.endpoint.is_empty() {
            format!("https://{}.blob.core.windows.net", c.account_name)
        } else {
            c.endpoint.trim_end_matches('/').to_string()
        };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| UploadError { storage: describe, why: e.to_string(), retry: false })?;
        Ok(Self { account: c.account_name.clone(), key, container: c.container_name.clone(), base, http })
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{}/{}", self.base, encode_key(&self.container), encode_key(key))
    }

    fn fail(&self, why: impl Into<String>, retry: bool) -> UploadError {
        UploadError { storage: self.describe(), why: why.into(), retry }
    }

    /// One signed PUT. `query` is (name, value) pairs, values unencoded.
    async fn put_signed(
        &self,
        url: &str,
        query: &[(&str, &str)],
        mut headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Result<(), UploadError> {
        let mut url = reqwest::Url::parse(url).map_err(|e| self.fail(format!("bad URL {url}: {e}"), false))?;
        for (k, v) in query {
            url.query_pairs_mut().append_pair(k, v);
        }
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        headers.push(("x-ms-date", date));
        headers.push(("x-ms-version", VERSION.into()));
        let content_type =
            headers.iter().find(|(k, _)| *k == "content-type").map(|(_, v)| v.clone()).unwrap_or_default();
        let auth = self.sign("PUT", &url, body.len(), &content_type, &headers);
        let mut req = self.http.put(url).header("Authorization", auth).header("Content-Length", body.len());
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let resp = req.body(body).send().await.map_err(|e| self.fail(network(&e), true))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let code = resp.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = resp.text().await.unwrap_or_default();
        let message =
            between(&text, "<Message>", "</Message>").unwrap_or_default().lines().next().unwrap_or("").to_string();
        let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        Err(self.fail(format!("HTTP {} {code}: {message}", status.as_u16()).trim_end_matches(": ").to_string(), retry))
    }

    /// `SharedKey account:signature` over Azure's string-to-sign for this request.
    fn sign(
        &self,
        verb: &str,
        url: &reqwest::Url,
        length: usize,
        content_type: &str,
        headers: &[(&'static str, String)],
    ) -> String {
        let mut ms: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-ms-"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        ms.sort();
        let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        // The resource: "/" + account + the URL's path as sent (with an emulator's
        // path-style URL the account appears twice), then each query parameter sorted.
        let mut resource = format!("/{}{}", self.account, url.path());
        let mut q: Vec<(String, String)> =
            url.query_pairs().map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect();
        q.sort();
        for (k, v) in q {
            resource.push_str(&format!("\n{k}:{v}"));
        }
        let length = if length == 0 { String::new() } else { length.to_string() };
        let to_sign = format!("{verb}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n{canonical_headers}{resource}");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(to_sign.as_bytes());
        format!("SharedKey {}:{}", self.account, B64.encode(mac.finalize().into_bytes()))
    }
}

#[async_trait::async_trait]
impl ObjectStore for AzureStore {
    async fn put(&self, key: &str, path: &Path, content_type: &str) -> Result<String, UploadError> {
        let url = self.url(key);
        let read = |e: std::io::Error| self.fail(format!("cannot read {}: {e}", path.display()), false);
        let size = tokio::fs::metadata(path).await.map_err(read)?.len();
        if size <= SINGLE_PUT_MAX {
            let body = tokio::fs::read(path).await.map_err(read)?;
            let headers = vec![("x-ms-blob-type", "BlockBlob".to_string()), ("content-type", content_type.to_string())];
            self.put_signed(&url, &[], headers, body).await?;
            return Ok(url);
        }
        let mut file = tokio::fs::File::open(path).await.map_err(read)?;
        let mut ids = Vec::new();
        loop {
            let mut block = Vec::with_capacity(BLOCK);
            (&mut file).take(BLOCK as u64).read_to_end(&mut block).await.map_err(read)?;
            if block.is_empty() {
                break;
            }
            // Block ids: the same length for every block of a blob.
            let id = B64.encode(format!("block-{:08}", ids.len()));
            self.put_signed(&url, &[("comp", "block"), ("blockid", &id)], Vec::new(), block).await?;
            ids.push(id);
        }
        let list: String = ids.iter().map(|id| format!("<Latest>{id}</Latest>")).collect();
        let body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>").into_bytes();
        let headers = vec![("x-ms-blob-content-type", content_type.to_string())];
        self.put_signed(&url, &[("comp", "blocklist")], headers, body).await?;
        Ok(url)
    }

    fn describe(&self) -> String {
        format!("Azure container {:?} of account {:?}", self.container, self.account)
    }
}

/// A network error in words, with its cause (reqwest's own message stops at "error sending request").
pub fn network(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}
