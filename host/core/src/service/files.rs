//! The file store: uploads are written to a staging file while their SHA-256 is computed, then
//! kept under `<data-dir>/files/<first two hex digits>/<sha256>` (the same bytes are kept once),
//! with their metadata in the database. A file attached to an item is readable by whoever may
//! read the item; an unattached one by its uploader and administrators.
//!
//! The [`super::Files`] aggregate (`core.files()`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::items::TimelineNote;
use super::{Caller, Files, ServiceError, ServiceResult};
use voronka_model::access::Access;
use voronka_model::file::{MAX_FILE, StoredFile, content_type, safe_name};
use voronka_model::item::{ItemRef, TimelineKind};
use voronka_model::time::{now_micros, to_rfc3339};
use voronka_store::StoreError;
use voronka_store::files as repo;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServiceError + '_ {
    move |source| ServiceError::Store(StoreError::File { path: path.display().to_string(), source })
}

/// An upload being received: its staging file, running hash and size. Dropped unfinished, its
/// staging file is removed.
pub struct Upload {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    /// Moved into the store: nothing to remove.
    kept: bool,
    hasher: Sha256,
    size: u64,
}

impl Upload {
    /// Appends a chunk; refused once the file grows past the size limit.
    pub async fn write(&mut self, chunk: &[u8]) -> ServiceResult<()> {
        self.size += chunk.len() as u64;
        if self.size > MAX_FILE {
            return Err(ServiceError::TooLarge(format!("a file may have at most {MAX_FILE} bytes")));
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().ok_or_else(|| ServiceError::invalid("file", "the upload is closed"))?;
        file.write_all(chunk).await.map_err(io_error(&self.path))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What an upload is, besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct UploadInfo {
    /// The name the client gave.
    pub name: String,
    /// The media type the client gave.
    pub content_type: Option<String>,
    /// The item to attach it to.
    pub attach: Option<ItemRef>,
}

impl Files<'_> {
    /// The folder of the file store.
    fn root(&self) -> PathBuf {
        self.core.data_dir.join("files")
    }

    /// Removes staging files a stopped host left behind (call before serving).
    pub async fn clear_staging(&self) -> ServiceResult<()> {
        let staging = self.root().join("staging");
        match tokio::fs::remove_dir_all(&staging).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&staging)(e)),
        }
    }

    /// Starts receiving an upload.
    pub async fn begin_upload(&self) -> ServiceResult<Upload> {
        let staging = self.root().join("staging");
        tokio::fs::create_dir_all(&staging).await.map_err(io_error(&staging))?;
        let path = staging.join(format!("{}.part", super::auth::random_secret()));
        let file = tokio::fs::File::create(&path).await.map_err(io_error(&path))?;
        Ok(Upload { file: Some(file), path, kept: false, hasher: Sha256::new(), size: 0 })
    }

    /// Keeps a received upload and records it, attached to an item when asked (the caller
    /// needs write access to it; its timeline notes the file).
    pub async fn finish_upload(
        &self,
        caller: &Caller,
        mut upload: Upload,
        info: UploadInfo,
    ) -> ServiceResult<StoredFile> {
        let user = caller.principal.user_id;
        if let Some(item) = &info.attach {
            let found = self.core.items().get(caller, &item.type_key, item.id).await?;
            self.core.require(caller, &found.type_key, found.funnel.as_deref(), Access::Write)?;
        }
        let name = safe_name(&info.name);
        let mut file = upload.file.take().ok_or_else(|| ServiceError::invalid("file", "the upload is closed"))?;
        file.flush().await.map_err(io_error(&upload.path))?;
        file.sync_all().await.map_err(io_error(&upload.path))?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut upload.hasher).finalize());
        let target = self.blob_path(&sha256);
        let folder = target.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root());
        tokio::fs::create_dir_all(&folder).await.map_err(io_error(&folder))?;
        // Same bytes, same name: the rename replaces them with themselves.
        tokio::fs::rename(&upload.path, &target).await.map_err(io_error(&target))?;
        upload.kept = true;
        let now = now_micros();
        let mut stored = StoredFile {
            id: 0,
            sha256,
            size: upload.size as i64,
            content_type: content_type(info.content_type.as_deref(), &name),
            name,
            item: info.attach.clone(),
            created_by: user,
            created_at: to_rfc3339(now),
        };
        let mut tx = self.core.store.begin();
        stored.id = repo::insert(&mut tx, &stored, now).await?;
        if let Some(item) = &info.attach {
            let text = format!("File attached: {}", stored.name);
            let data = serde_json::json!({ "file": stored.id });
            self.core
                .items()
                .add_timeline_entry_in(
                    &mut tx,
                    caller,
                    item,
                    TimelineNote { kind: TimelineKind::System, text: &text, data: &data },
                )
                .await?;
        }
        tx.commit().await?;
        if info.attach.is_some() {
            self.core.committed();
        }
        Ok(stored)
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root().join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// A file's metadata, when the caller may read it.
    pub async fn get(&self, caller: &Caller, id: i64) -> ServiceResult<StoredFile> {
        let file = repo::get(self.core.store.reader(), id).await?;
        let visible = match &file {
            None => false,
            Some(f) => match &f.item {
                Some(item) => self.core.items().get(caller, &item.type_key, item.id).await.is_ok(),
                None => caller.principal.is_admin || f.created_by == caller.principal.user_id,
            },
        };
        match file {
            Some(f) if visible => Ok(f),
            _ => Err(ServiceError::NotFound(format!("no file {id}"))),
        }
    }

    /// A file's metadata and bytes, when the caller may read it.
    pub async fn read(&self, caller: &Caller, id: i64) -> ServiceResult<(StoredFile, Vec<u8>)> {
        let file = self.get(caller, id).await?;
        let path = self.blob_path(&file.sha256);
        let bytes = tokio::fs::read(&path).await.map_err(io_error(&path))?;
        Ok((file, bytes))
    }

    /// The files attached to an item the caller may read.
    pub async fn of_item(&self, caller: &Caller, item: &ItemRef) -> ServiceResult<Vec<StoredFile>> {
        self.core.items().get(caller, &item.type_key, item.id).await?;
        Ok(repo::of_item(self.core.store.reader(), item).await?)
    }
}
