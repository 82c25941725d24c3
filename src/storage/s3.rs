//! Objects in an S3-compatible store (MinIO, Garage, AWS S3, …) through the
//! `minio` crate. Uploads of unknown length stream as multipart uploads, so at
//! most one part is held in memory.

use futures_util::StreamExt;
use minio::s3::MinioClient;
use minio::s3::builders::ObjectContent;
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, S3ServerError};
use minio::s3::http::BaseUrl;
use minio::s3::types::minio_error_response::MinioErrorCode;
use minio::s3::types::{ObjectKey, S3Api};

use super::object::{ByteStream, Download, StorageError};
use crate::config;

/// Parts of a streamed upload (S3's minimum is 5 MiB).
const PART_SIZE: u64 = 8 * 1024 * 1024;

pub struct S3Store {
    client: MinioClient,
    bucket: String,
}

fn backend(error: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(error.to_string())
}

fn is_missing(error: &MinioError) -> bool {
    matches!(
        error,
        MinioError::S3Server(S3ServerError::S3Error(response))
            if matches!(response.code(), MinioErrorCode::NoSuchKey)
    )
}

impl S3Store {
    pub async fn open(settings: &config::Storage) -> Result<Self, StorageError> {
        let endpoint = settings.s3_endpoint.as_deref().ok_or_else(|| {
            backend("CLASSBELL_S3_ENDPOINT is required when CLASSBELL_STORAGE=s3")
        })?;
        let mut base_url: BaseUrl = endpoint
            .parse()
            .map_err(|e| backend(format!("CLASSBELL_S3_ENDPOINT: {e}")))?;
        base_url.region = settings
            .s3_region
            .as_str()
            .try_into()
            .map_err(|e| backend(format!("CLASSBELL_S3_REGION: {e}")))?;
        let credentials =
            StaticProvider::new(&settings.s3_access_key, &settings.s3_secret_key, None);
        let client = minio::s3::client::MinioClientBuilder::new(base_url)
            .provider(Some(credentials))
            .skip_region_lookup(true)
            .build()
            .map_err(backend)?;
        let store = S3Store {
            client,
            bucket: settings.s3_bucket.clone(),
        };
        store.ensure_bucket().await?;
        Ok(store)
    }

    async fn ensure_bucket(&self) -> Result<(), StorageError> {
        let exists = self
            .client
            .bucket_exists(self.bucket.as_str())
            .map_err(backend)?
            .build()
            .send()
            .await
            .map_err(backend)?
            .exists();
        if !exists {
            tracing::info!(bucket = %self.bucket, "creating the object storage bucket");
            self.client
                .create_bucket(self.bucket.as_str())
                .map_err(backend)?
                .build()
                .send()
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    fn key(key: &str) -> Result<ObjectKey, StorageError> {
        ObjectKey::new(key).map_err(backend)
    }

    pub async fn put(
        &self,
        key: &str,
        content_type: &str,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        let content = ObjectContent::new_from_stream(body, None::<u64>);
        self.client
            .put_object_content(self.bucket.as_str(), Self::key(key)?, content)
            .map_err(backend)?
            .part_size(PART_SIZE)
            .content_type(content_type.to_owned())
            .build()
            .send()
            .await
            .map(drop)
            .map_err(|error| match error {
                MinioError::DriveIo(io) => {
                    StorageError::Interrupted(std::io::Error::other(io.to_string()))
                }
                other => backend(other),
            })
    }

    pub async fn get(&self, key: &str) -> Result<Download, StorageError> {
        let response = self
            .client
            .get_object(self.bucket.as_str(), Self::key(key)?)
            .map_err(backend)?
            .build()
            .send()
            .await
            .map_err(|e| {
                if is_missing(&e) {
                    StorageError::NotFound
                } else {
                    backend(e)
                }
            })?;
        let size = response.object_size().ok();
        let (body, _) = response
            .content()
            .map_err(backend)?
            .to_stream()
            .await
            .map_err(backend)?;
        Ok(Download {
            body: Box::pin(body.map(|chunk| chunk.map_err(std::io::Error::other))),
            size,
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self
            .client
            .delete_object(self.bucket.as_str(), key)
            .map_err(backend)?
            .build()
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
