//! Objects as files under one folder. Writes go to a temporary file that is
//! renamed into place, so a key never names half an object.

use std::io;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::object::{ByteStream, Download, StorageError};

pub struct LocalStore {
    root: PathBuf,
}

fn backend(error: io::Error) -> StorageError {
    StorageError::Backend(error.to_string())
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root.join(".incoming")).map_err(backend)?;
        Ok(LocalStore {
            root: root.to_path_buf(),
        })
    }

    /// Keys are classbell's own (`attachments/<uuid>`); anything that could
    /// climb out of the folder is refused all the same.
    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.contains('\\')
            });
        if safe {
            Ok(self.root.join(key))
        } else {
            Err(StorageError::Backend(format!(
                "refusing unsafe object key {key:?}"
            )))
        }
    }

    pub async fn put(&self, key: &str, mut body: ByteStream) -> Result<(), StorageError> {
        let target = self.path(key)?;
        let incoming = self
            .root
            .join(".incoming")
            .join(uuid::Uuid::new_v4().to_string());
        let written = async {
            let mut file = tokio::fs::File::create(&incoming).await.map_err(backend)?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StorageError::Interrupted)?;
                file.write_all(&chunk).await.map_err(backend)?;
            }
            file.sync_all().await.map_err(backend)?;
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(backend)?;
            }
            tokio::fs::rename(&incoming, &target).await.map_err(backend)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&incoming).await;
        }
        written
    }

    pub async fn get(&self, key: &str) -> Result<Download, StorageError> {
        let file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::NotFound),
            Err(e) => return Err(backend(e)),
        };
        let size = file.metadata().await.map_err(backend)?.len();
        Ok(Download {
            body: Box::pin(ReaderStream::with_capacity(file, 64 * 1024)),
            size: Some(size),
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                // Drop the key's folder once it is empty (fails, harmlessly, if not).
                if let Some(parent) = path.parent().filter(|p| *p != self.root) {
                    let _ = tokio::fs::remove_dir(parent).await;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
