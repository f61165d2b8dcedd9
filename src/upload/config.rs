//! Where uploads go, as LiveKit egress describes it: the service config's `storage`
//! (and `backup`) blocks, or a request's S3Upload / GCPUpload / AzureBlobUpload. The
//! request wins wholesale, as in LiveKit; what a request cannot say (the storage
//! `prefix`, S3 retry settings, the endpoint of Azure and GCS, whose request messages
//! have no such field) comes from the service's block for the same provider.

use livekit_protocol as proto;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A credential: never printed, never logged (Debug shows `***`).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// LiveKit's `storage:` / `backup:` block: a prefix and one provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Prepended to every object key.
    pub prefix: String,
    pub generate_presigned_url: bool,
    pub s3: Option<S3Config>,
    pub azure: Option<AzureConfig>,
    pub gcp: Option<GcpConfig>,
    pub alioss: Option<serde_yaml_ng::Value>,
    /// LiveKit's local storage: a directory files are copied into.
    pub local: Option<LocalConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct S3Config {
    pub access_key: Secret,
    pub secret: Secret,
    pub session_token: Secret,
    pub assume_role_arn: String,
    pub assume_role_external_id: Secret,
    pub region: String,
    /// An S3-compatible service (MinIO, moto, R2...); empty: AWS.
    pub endpoint: String,
    pub bucket: String,
    pub force_path_style: bool,
    /// Attempts per upload call inside the SDK (LiveKit's request default: 5).
    pub max_retries: u32,
    #[serde(deserialize_with = "crate::time::deserialize_duration")]
    pub max_retry_delay: Option<Duration>,
    #[serde(deserialize_with = "crate::time::deserialize_duration")]
    pub min_retry_delay: Option<Duration>,
    pub metadata: BTreeMap<String, String>,
    pub tagging: String,
    pub content_disposition: String,
    pub proxy_config: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AzureConfig {
    pub account_name: String,
    pub account_key: Secret,
    pub container_name: String,
    /// Tessera's: the blob service's base URL (Azurite: http://127.0.0.1:10000/devstoreaccount1,
    /// sovereign clouds); empty: https://{account_name}.blob.core.windows.net.
    pub endpoint: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GcpConfig {
    /// A service account's credentials.json; empty: the machine's default credentials.
    #[serde(alias = "credentials")]
    pub credentials_json: Secret,
    pub bucket: String,
    /// Tessera's: the JSON API's base URL (an emulator); empty: STORAGE_EMULATOR_HOST, else Google's.
    pub endpoint: String,
    pub proxy_config: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LocalConfig {
    pub storage_dir: std::path::PathBuf,
}

/// One place objects go.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a few per job, built once: their size does not matter
pub enum Provider {
    S3(S3Config),
    Azure(AzureConfig),
    Gcp(GcpConfig),
    Local(LocalConfig),
}

/// A resolved storage: where, and the prefix of every key.
#[derive(Debug, Clone)]
pub struct StorageSpec {
    pub prefix: String,
    pub provider: Provider,
}

impl Provider {
    /// How errors and logs name it: the provider and bucket, never a credential.
    pub fn describe(&self) -> String {
        match self {
            Provider::S3(c) => {
                let at = if c.endpoint.is_empty() { String::new() } else { format!(" at {}", c.endpoint) };
                format!("S3 bucket {:?}{at}", c.bucket)
            }
            Provider::Azure(c) => format!("Azure container {:?} of account {:?}", c.container_name, c.account_name),
            Provider::Gcp(c) => format!("GCS bucket {:?}", c.bucket),
            Provider::Local(c) => format!("local directory {}", c.storage_dir.display()),
        }
    }
}

/// Why a storage configuration cannot be used; `key` names the field.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {why}")]
pub struct StorageConfigError {
    pub key: String,
    pub why: String,
}

fn bad(key: impl Into<String>, why: impl Into<String>) -> StorageConfigError {
    StorageConfigError { key: key.into(), why: why.into() }
}

impl StorageConfig {
    /// The block's provider, checked; None when it names none. `at` is the block's key
    /// (`storage`, `backup`) for errors.
    pub fn spec(&self, at: &str) -> Result<Option<StorageSpec>, StorageConfigError> {
        let mut found = Vec::new();
        if let Some(c) = &self.s3 {
            found.push(Provider::S3(c.clone()));
        }
        if let Some(c) = &self.azure {
            found.push(Provider::Azure(c.clone()));
        }
        if let Some(c) = &self.gcp {
            found.push(Provider::Gcp(c.clone()));
        }
        if let Some(c) = &self.local {
            found.push(Provider::Local(c.clone()));
        }
        if self.alioss.is_some() {
            return Err(bad(format!("{at}.alioss"), "Alibaba OSS is not supported; use s3, azure or gcp"));
        }
        if self.generate_presigned_url {
            return Err(bad(
                format!("{at}.generate_presigned_url"),
                "presigned URLs are not supported; results carry the object's plain URL",
            ));
        }
        if found.len() > 1 {
            return Err(bad(at, "name one provider: s3, azure, gcp or local"));
        }
        let Some(provider) = found.pop() else { return Ok(None) };
        check(&provider, at)?;
        Ok(Some(StorageSpec { prefix: self.prefix.trim_matches('/').to_string(), provider }))
    }

    fn s3_defaults(&self) -> Option<&S3Config> {
        self.s3.as_ref()
    }
}

/// Checks what a provider needs, naming the field (`at` is where it came from).
pub fn check(p: &Provider, at: &str) -> Result<(), StorageConfigError> {
    match p {
        Provider::S3(c) => {
            if c.bucket.is_empty() {
                return Err(bad(format!("{at}.s3.bucket"), "is required"));
            }
            if !c.assume_role_arn.is_empty() {
                return Err(bad(
                    format!("{at}.s3.assume_role_arn"),
                    "AssumeRole is not supported; give access_key and secret (and session_token)",
                ));
            }
            if !c.assume_role_external_id.0.is_empty() {
                return Err(bad(
                    format!("{at}.s3.assume_role_external_id"),
                    "belongs to AssumeRole, which is not supported; give access_key and secret (and session_token)",
                ));
            }
            if c.proxy_config.is_some() {
                return Err(bad(format!("{at}.s3.proxy_config"), "upload proxies are not supported"));
            }
            if c.access_key.0.is_empty() != c.secret.0.is_empty() {
                return Err(bad(format!("{at}.s3.secret"), "give both access_key and secret, or neither"));
            }
            check_endpoint(&c.endpoint, at, "s3")?;
        }
        Provider::Azure(c) => {
            if c.account_name.is_empty() {
                return Err(bad(format!("{at}.azure.account_name"), "is required"));
            }
            if c.account_key.0.is_empty() {
                return Err(bad(format!("{at}.azure.account_key"), "is required"));
            }
            if c.container_name.is_empty() {
                return Err(bad(format!("{at}.azure.container_name"), "is required"));
            }
            check_endpoint(&c.endpoint, at, "azure")?;
        }
        Provider::Gcp(c) => {
            if c.bucket.is_empty() {
                return Err(bad(format!("{at}.gcp.bucket"), "is required"));
            }
            if c.proxy_config.is_some() {
                return Err(bad(format!("{at}.gcp.proxy_config"), "upload proxies are not supported"));
            }
            check_endpoint(&c.endpoint, at, "gcp")?;
            if !c.credentials_json.0.is_empty()
                && serde_json::from_str::<serde_json::Value>(&c.credentials_json.0).is_err()
            {
                return Err(bad(
                    format!("{at}.gcp.credentials_json"),
                    "is not JSON (a service account's credentials.json)",
                ));
            }
        }
        Provider::Local(c) => {
            if c.storage_dir.as_os_str().is_empty() {
                return Err(bad(format!("{at}.local.storage_dir"), "is required"));
            }
        }
    }
    Ok(())
}

/// An endpoint, when given, is an http(s) URL.
fn check_endpoint(endpoint: &str, at: &str, provider: &str) -> Result<(), StorageConfigError> {
    if endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        Ok(())
    } else {
        Err(bad(format!("{at}.{provider}.endpoint"), format!("{endpoint:?} must be an http(s):// URL")))
    }
}

/// A request's own storage, completed from the service's block as LiveKit does: the
/// service's prefix is kept; S3 retry settings come from the service (5 attempts, up to
/// 5 s apart, when unset); Azure and GCS take the service's endpoint, which their request
/// messages cannot carry.
pub(crate) fn from_request(
    s: &proto::StorageConfig,
    service: Option<&StorageConfig>,
    field: &str,
) -> Result<StorageSpec, StorageConfigError> {
    use proto::storage_config::Provider as P;
    let svc = service.cloned().unwrap_or_default();
    let provider = match &s.provider {
        Some(P::S3(u)) => {
            let d = svc.s3_defaults().cloned().unwrap_or_default();
            if u.proxy.is_some() {
                return Err(bad(format!("{field}.s3.proxy"), "upload proxies are not supported"));
            }
            Provider::S3(S3Config {
                access_key: Secret(u.access_key.clone()),
                secret: Secret(u.secret.clone()),
                session_token: Secret(u.session_token.clone()),
                assume_role_arn: u.assume_role_arn.clone(),
                assume_role_external_id: Secret(u.assume_role_external_id.clone()),
                region: u.region.clone(),
                endpoint: u.endpoint.clone(),
                bucket: u.bucket.clone(),
                force_path_style: u.force_path_style,
                max_retries: if d.max_retries == 0 { 5 } else { d.max_retries },
                max_retry_delay: d.max_retry_delay.or(Some(Duration::from_secs(5))),
                min_retry_delay: d.min_retry_delay.or(Some(Duration::from_millis(100))),
                metadata: u.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                tagging: u.tagging.clone(),
                content_disposition: u.content_disposition.clone(),
                proxy_config: None,
            })
        }
        Some(P::Azure(u)) => Provider::Azure(AzureConfig {
            account_name: u.account_name.clone(),
            account_key: Secret(u.account_key.clone()),
            container_name: u.container_name.clone(),
            endpoint: svc.azure.as_ref().map(|a| a.endpoint.clone()).unwrap_or_default(),
        }),
        Some(P::Gcp(u)) => {
            if u.proxy.is_some() {
                return Err(bad(format!("{field}.gcp.proxy"), "upload proxies are not supported"));
            }
            Provider::Gcp(GcpConfig {
                credentials_json: Secret(u.credentials.clone()),
                bucket: u.bucket.clone(),
                endpoint: svc.gcp.as_ref().map(|g| g.endpoint.clone()).unwrap_or_default(),
                proxy_config: None,
            })
        }
        Some(P::AliOss(_)) => {
            return Err(bad(format!("{field}.aliOSS"), "Alibaba OSS is not supported; use s3, azure or gcp"));
        }
        None => return Err(bad(field, "names no provider: give s3, azure or gcp")),
    };
    check(&provider, field)?;
    Ok(StorageSpec { prefix: svc.prefix.trim_matches('/').to_string(), provider })
}

/// The legacy top-level keys of LiveKit egress before 1.9 (`s3:`, `azure:`, `gcp:`), read
/// as a `storage:` block.
pub fn legacy(
    s3: Option<&serde_yaml_ng::Value>,
    azure: Option<&serde_yaml_ng::Value>,
    gcp: Option<&serde_yaml_ng::Value>,
) -> Result<Option<StorageConfig>, StorageConfigError> {
    fn parse<T: for<'de> Deserialize<'de>>(
        v: Option<&serde_yaml_ng::Value>,
        key: &str,
    ) -> Result<Option<T>, StorageConfigError> {
        v.map(|v| serde_yaml_ng::from_value(v.clone()).map_err(|e| bad(key, e.to_string()))).transpose()
    }
    let c = StorageConfig {
        s3: parse(s3, "s3")?,
        azure: parse(azure, "azure")?,
        gcp: parse(gcp, "gcp")?,
        ..Default::default()
    };
    Ok(if c.s3.is_none() && c.azure.is_none() && c.gcp.is_none() { None } else { Some(c) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c =
            S3Config { access_key: Secret("AKIA123".into()), secret: Secret("hunter2".into()), ..Default::default() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("AKIA123") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_request_wins_but_keeps_the_service_prefix_endpoint_and_retries() {
        let svc: StorageConfig = serde_yaml_ng::from_str(
            "prefix: /rec/\nazure:\n  account_name: a\n  account_key: k\n  container_name: c\n  endpoint: http://127.0.0.1:10000/a\n",
        )
        .unwrap();
        let req = proto::StorageConfig {
            provider: Some(proto::storage_config::Provider::Azure(proto::AzureBlobUpload {
                account_name: "b".into(),
                account_key: "k2".into(),
                container_name: "d".into(),
            })),
        };
        let s = from_request(&req, Some(&svc), "file_outputs").unwrap();
        assert_eq!(s.prefix, "rec");
        let Provider::Azure(a) = s.provider else { panic!() };
        assert_eq!((a.account_name.as_str(), a.endpoint.as_str()), ("b", "http://127.0.0.1:10000/a"));
        let req = proto::StorageConfig {
            provider: Some(proto::storage_config::Provider::S3(proto::S3Upload {
                bucket: "x".into(),
                ..Default::default()
            })),
        };
        let Provider::S3(s3) = from_request(&req, None, "f").unwrap().provider else { panic!() };
        assert_eq!((s3.max_retries, s3.max_retry_delay), (5, Some(Duration::from_secs(5))));
    }

    #[test]
    fn missing_fields_are_named() {
        let svc: StorageConfig = serde_yaml_ng::from_str("s3:\n  region: x\n").unwrap();
        assert_eq!(svc.spec("storage").unwrap_err().key, "storage.s3.bucket");
        let two: StorageConfig = serde_yaml_ng::from_str("s3:\n  bucket: b\ngcp:\n  bucket: c\n").unwrap();
        assert_eq!(two.spec("backup").unwrap_err().key, "backup");
        let none = proto::StorageConfig { provider: None };
        assert_eq!(from_request(&none, None, "segment_outputs").unwrap_err().key, "segment_outputs");
    }
}
