use super::contract::{
    unquote, Meta, Object, PutCondition, Storage, StorageError, StorageErrorKind,
};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use vsync_orchestrate_api::shell_quote;

/// A vault in a local directory, for the demo, single-host setups and fast tests.
///
/// Keys map to files under the root; ETags and metadata live in a sidecar tree
/// (`.vsync-meta/`). Every read and write holds an `flock` on `.vsync-lock`, so the
/// check-then-write of a conditional put is atomic across threads and processes,
/// and a rename makes each object appear whole.
#[derive(Debug, Clone)]
pub struct DirStorage {
    root: PathBuf,
}

const META_DIR: &str = ".vsync-meta";
const LOCK_FILE: &str = ".vsync-lock";

#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    etag: String,
    meta: Meta,
}

fn io_err(op: &'static str, key: &str, e: std::io::Error) -> StorageError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => StorageErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => StorageErrorKind::Permission,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(kind, op, key, e.to_string())
}

struct Flock {
    _file: File,
}

impl Flock {
    fn take(root: &Path, exclusive: bool) -> std::io::Result<Flock> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(root.join(LOCK_FILE))?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a file descriptor we own; released when the File closes.
        if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Flock { _file: f })
    }
}

impl DirStorage {
    /// Opens (creating if needed) a vault directory.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<DirStorage> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(DirStorage {
            root: root.canonicalize()?,
        })
    }

    /// Opens a vault directory without creating it: `plan` and `run` must not make
    /// a missing directory appear. Reads of a missing directory find nothing (the
    /// vault is not found, exit 5); writes fail.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<DirStorage> {
        let root = root.into();
        let root = match root.canonicalize() {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::path::absolute(&root)?,
            Err(e) => return Err(e),
        };
        Ok(DirStorage { root })
    }

    fn missing(&self) -> bool {
        !self.root.is_dir()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, op: &'static str, key: &str) -> Result<PathBuf, StorageError> {
        let rel = Path::new(key);
        let safe = !key.is_empty()
            && !key.ends_with('/')
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && !key.starts_with(META_DIR)
            && key != LOCK_FILE;
        if !safe {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                op,
                key,
                "not a valid object key",
            ));
        }
        Ok(self.root.join(rel))
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    fn sidecar(&self, key: &str) -> Option<Sidecar> {
        fs::read(self.sidecar_path(key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn read_sidecar(&self, key: &str, body: &[u8]) -> Sidecar {
        self.sidecar(key).unwrap_or_else(|| Sidecar {
            etag: content_etag(body),
            meta: Meta::new(),
        })
    }

    /// The ETag of an existing object without reading it into memory (a file of
    /// any size may be put there by hand); `None` when it does not exist.
    fn etag_of(&self, key: &str, path: &Path) -> std::io::Result<Option<String>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.is_dir() {
            return Ok(None);
        }
        if let Some(side) = self.sidecar(key) {
            return Ok(Some(side.etag));
        }
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut std::io::BufReader::new(file), &mut hasher)?;
        Ok(Some(hex16(&hasher.finalize())))
    }

    fn get_sync(&self, key: &str, limit: u64) -> Result<Option<Object>, StorageError> {
        let path = self.path("get", key)?;
        if self.missing() {
            return Ok(None);
        }
        let _lock = Flock::take(&self.root, false).map_err(|e| io_err("get", key, e))?;
        match read_limited(&path, limit) {
            Ok(Err(size)) => Err(StorageError::too_large("get", key, size, limit)),
            Ok(Ok(body)) => {
                let side = self.read_sidecar(key, &body);
                Ok(Some(Object {
                    body,
                    etag: side.etag,
                    meta: side.meta,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(None),
            Err(e) => Err(io_err("get", key, e)),
        }
    }

    fn put_sync(
        &self,
        key: &str,
        body: &[u8],
        cond: &PutCondition,
        meta: &Meta,
    ) -> Result<String, StorageError> {
        let path = self.path("put", key)?;
        if self.missing() {
            return Err(StorageError::new(
                StorageErrorKind::NotFound,
                "put",
                key,
                format!("the vault directory {} does not exist", self.root.display()),
            ));
        }
        let _lock = Flock::take(&self.root, true).map_err(|e| io_err("put", key, e))?;
        let existing = self
            .etag_of(key, &path)
            .map_err(|e| io_err("put", key, e))?;
        match (cond, &existing) {
            (PutCondition::IfAbsent, Some(_)) => {
                return Err(StorageError::new(
                    StorageErrorKind::PreconditionFailed,
                    "put",
                    key,
                    "object already exists (If-None-Match: *)",
                ))
            }
            (PutCondition::IfMatch(_), None) => {
                return Err(StorageError::new(
                    StorageErrorKind::NotFound,
                    "put",
                    key,
                    "object does not exist (If-Match)",
                ))
            }
            (PutCondition::IfMatch(want), Some(have)) if unquote(want) != *have => {
                return Err(StorageError::new(
                    StorageErrorKind::PreconditionFailed,
                    "put",
                    key,
                    "object changed since it was read (If-Match)",
                ))
            }
            _ => {}
        }
        let mut rnd = [0u8; 16];
        getrandom::fill(&mut rnd).expect("OS random source");
        let etag = hex::encode(rnd);
        let side = serde_json::to_vec(&Sidecar {
            etag: etag.clone(),
            meta: meta.clone(),
        })
        .expect("sidecar serialises");
        write_atomic(&self.sidecar_path(key), &side).map_err(|e| io_err("put", key, e))?;
        write_atomic(&path, body).map_err(|e| io_err("put", key, e))?;
        Ok(etag)
    }

    fn delete_sync(&self, key: &str, if_match: Option<&str>) -> Result<(), StorageError> {
        let path = self.path("delete", key)?;
        if self.missing() {
            return Ok(());
        }
        let _lock = Flock::take(&self.root, true).map_err(|e| io_err("delete", key, e))?;
        let Some(etag) = self
            .etag_of(key, &path)
            .map_err(|e| io_err("delete", key, e))?
        else {
            return Ok(());
        };
        if let Some(want) = if_match {
            if etag != unquote(want) {
                return Err(StorageError::new(
                    StorageErrorKind::PreconditionFailed,
                    "delete",
                    key,
                    "object changed since it was read (If-Match)",
                ));
            }
        }
        fs::remove_file(&path).map_err(|e| io_err("delete", key, e))?;
        let _ = fs::remove_file(self.sidecar_path(key));
        Ok(())
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list", prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err("list", prefix, e))?;
                let p = entry.path();
                let rel = p
                    .strip_prefix(&self.root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                if rel == META_DIR
                    || rel == LOCK_FILE
                    || rel.contains("/.vsync-tmp-")
                    || rel.starts_with(".vsync-tmp-")
                {
                    continue;
                }
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p);
                } else if rel.starts_with(prefix) {
                    out.push(rel);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The file's bytes, or `Err(size)` when it holds more than `limit` (read at most
/// `limit + 1` bytes: the size on disk may change under us).
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    if len > limit {
        return Ok(Err(len));
    }
    let mut body = Vec::with_capacity(len as usize);
    f.take(limit.saturating_add(1)).read_to_end(&mut body)?;
    if body.len() as u64 > limit {
        return Ok(Err(body.len() as u64));
    }
    Ok(Ok(body))
}

/// An ETag for a file written by something other than this backend.
fn content_etag(body: &[u8]) -> String {
    use sha2::Digest;
    hex16(&sha2::Sha256::digest(body))
}

fn hex16(digest: &[u8]) -> String {
    hex::encode(&digest[..16])
}

/// Temp file in the same directory (0600, named `.vsync-tmp-…`), fsync, rename,
/// directory fsync: readers see the old or the new object, never half of one.
pub(crate) fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("object paths have a parent");
    fs::create_dir_all(dir)?;
    vsync_orchestrate_api::atomic_write(path, body, 0o600)
}

#[async_trait::async_trait]
impl Storage for DirStorage {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    async fn get_limited(&self, key: &str, limit: u64) -> Result<Option<Object>, StorageError> {
        let (s, k) = (self.clone(), key.to_owned());
        blocking(move || s.get_sync(&k, limit)).await
    }

    async fn head(&self, key: &str) -> Result<Option<String>, StorageError> {
        let (s, k) = (self.clone(), key.to_owned());
        blocking(move || {
            let path = s.path("head", &k)?;
            if s.missing() {
                return Ok(None);
            }
            let _lock = Flock::take(&s.root, false).map_err(|e| io_err("head", &k, e))?;
            s.etag_of(&k, &path).map_err(|e| io_err("head", &k, e))
        })
        .await
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        cond: PutCondition,
        meta: &Meta,
    ) -> Result<String, StorageError> {
        let (s, k, m) = (self.clone(), key.to_owned(), meta.clone());
        blocking(move || s.put_sync(&k, &body, &cond, &m)).await
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), StorageError> {
        let (s, k, m) = (self.clone(), key.to_owned(), if_match.map(str::to_owned));
        blocking(move || s.delete_sync(&k, m.as_deref())).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let (s, p) = (self.clone(), prefix.to_owned());
        blocking(move || s.list_sync(&p)).await
    }

    fn delete_command(&self, key: &str) -> String {
        format!(
            "rm -f -- {}",
            shell_quote(&self.root.join(key).display().to_string())
        )
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("storage task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_are_bounded_and_head_reads_no_body() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStorage::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("small"), b"0123456789").unwrap();
        // A file put there by hand, with no sidecar: larger than the limit.
        std::fs::write(dir.path().join("big"), vec![7u8; 4096]).unwrap();
        assert_eq!(
            s.get_limited("small", 10).await.unwrap().unwrap().body,
            b"0123456789"
        );
        let e = s.get_limited("small", 9).await.unwrap_err();
        assert_eq!(e.kind, StorageErrorKind::TooLarge, "{e}");
        let e = s.get_limited("big", 4095).await.unwrap_err();
        assert_eq!(e.kind, StorageErrorKind::TooLarge, "{e}");
        assert!(e.to_string().contains("4096 bytes"), "{e}");
        assert!(s.get_limited("missing", 1).await.unwrap().is_none());
        // head and conditional writes work on objects of any size, streaming.
        let etag = s.head("big").await.unwrap().unwrap();
        assert_eq!(etag, content_etag(&[7u8; 4096]));
        s.put(
            "big",
            b"x".to_vec(),
            PutCondition::IfMatch(etag),
            &Meta::new(),
        )
        .await
        .unwrap();
        assert_eq!(s.get("big").await.unwrap().unwrap().body, b"x");
    }
}
