//! Local storage: objects are copied into a directory (LiveKit's `local` storage and
//! its old `backup_storage` directory).

use super::{ObjectStore, UploadError};
use std::path::{Path, PathBuf};

pub(crate) struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub(crate) fn new(c: &super::config::LocalConfig) -> Self {
        Self { dir: c.storage_dir.clone() }
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, path: &Path, _content_type: &str) -> Result<String, UploadError> {
        let dst = self.dir.join(key);
        let err = |e: std::io::Error| UploadError {
            storage: self.describe(),
            why: format!("{}: {e}", dst.display()),
            retry: true,
        };
        if let Some(d) = dst.parent() {
            tokio::fs::create_dir_all(d).await.map_err(err)?;
        }
        // Written aside and renamed, so a reader never sees half a file.
        let part = PathBuf::from(format!("{}.part", dst.display()));
        tokio::fs::copy(path, &part).await.map_err(err)?;
        tokio::fs::rename(&part, &dst).await.map_err(err)?;
        Ok(dst.to_string_lossy().into_owned())
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.dir.display())
    }
}
