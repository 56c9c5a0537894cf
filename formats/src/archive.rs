//! Bounded reads of one member out of an archive held in the blob store: a zip (a Python wheel, read through its
//! central directory, so only the member's own bytes are touched) or a gzipped tar (an sdist, a Helm chart, read
//! from the front until the member turns up). Every read is capped, so an archive built to exhaust memory or time
//! is refused instead.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Why a member could not be read. The message is written for the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("the file is not a valid {0} archive")]
    NotArchive(&'static str),
    #[error("the archive is damaged: {0}")]
    Damaged(String),
    #[error("`{name}` in the archive is larger than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("the archive holds more than one {0}")]
    Ambiguous(String),
    #[error("the archive holds more than {0} members before the one looked for")]
    TooManyMembers(usize),
    #[error("the archive unpacks to more than {0} bytes before the member looked for")]
    Unpacked(u64),
}

/// At most this many members are looked at in a tar before giving up: a tar has no index, and an archive of a
/// million empty files should not hold a worker.
pub const MAX_TAR_MEMBERS: usize = 100_000;

/// The one member of a zip file whose name `pick` accepts, read whole when it is at most `max` bytes. `Ok(None)`
/// when no member matches; an error when several do.
pub fn zip_member(
    path: &Path,
    pick: impl Fn(&str) -> bool,
    max: u64,
) -> Result<Option<(String, Vec<u8>)>, ArchiveError> {
    let file = File::open(path).map_err(|e| ArchiveError::Damaged(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|_| ArchiveError::NotArchive("zip"))?;
    let mut found: Option<usize> = None;
    for i in 0..zip.len() {
        let Some(name) = zip.name_for_index(i) else {
            continue;
        };
        if pick(name) {
            if found.is_some() {
                return Err(ArchiveError::Ambiguous(name.to_string()));
            }
            found = Some(i);
        }
    }
    let Some(i) = found else { return Ok(None) };
    let mut entry = zip
        .by_index(i)
        .map_err(|e| ArchiveError::Damaged(e.to_string()))?;
    let name = entry.name().to_string();
    if entry.size() > max {
        return Err(ArchiveError::TooLarge { name, limit: max });
    }
    read_capped(&mut entry, &name, max).map(|bytes| Some((name, bytes)))
}

/// The first member of a gzipped tar whose path `pick` accepts, read whole when it is at most `max` bytes. At most
/// `max_unpacked` bytes are decompressed on the way: skipping a member of a gzipped stream means inflating it, and a
/// few kilobytes of gzip can inflate to gigabytes.
pub fn tar_gz_member(
    reader: impl Read,
    pick: impl Fn(&str) -> bool,
    max: u64,
    max_unpacked: u64,
) -> Result<Option<(String, Vec<u8>)>, ArchiveError> {
    let over = std::rc::Rc::new(std::cell::Cell::new(false));
    let unpacked = Bounded {
        inner: flate2::read::GzDecoder::new(reader),
        left: max_unpacked,
        over: over.clone(),
    };
    let mut archive = tar::Archive::new(unpacked);
    let entries = archive
        .entries()
        .map_err(|_| ArchiveError::NotArchive("tar.gz"))?;
    let bounded = |error: ArchiveError| match over.get() {
        true => ArchiveError::Unpacked(max_unpacked),
        false => error,
    };
    for (n, entry) in entries.enumerate() {
        if n >= MAX_TAR_MEMBERS {
            return Err(ArchiveError::TooManyMembers(MAX_TAR_MEMBERS));
        }
        let mut entry = entry.map_err(|_| {
            bounded(match n {
                0 => ArchiveError::NotArchive("tar.gz"),
                _ => ArchiveError::Damaged("a damaged tar entry".into()),
            })
        })?;
        let path = entry
            .path()
            .map_err(|_| ArchiveError::Damaged("a member name is not valid".into()))?
            .to_string_lossy()
            .into_owned();
        if !pick(&path) {
            continue;
        }
        if entry.size() > max {
            return Err(ArchiveError::TooLarge {
                name: path,
                limit: max,
            });
        }
        return read_capped(&mut entry, &path, max)
            .map(|bytes| Some((path, bytes)))
            .map_err(bounded);
    }
    Ok(None)
}

/// A reader that fails once more than `left` bytes have come through, and says so in `over`.
struct Bounded<R> {
    inner: R,
    left: u64,
    over: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.over.set(true);
            return Err(std::io::Error::other("unpacks to too many bytes"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads at most `max` bytes, and fails if there were more: a size in a header can lie.
fn read_capped(reader: &mut impl Read, name: &str, max: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ArchiveError::Damaged(format!("`{name}`: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(ArchiveError::TooLarge {
            name: name.to_string(),
            limit: max,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_file(members: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
        for (name, data) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        file
    }

    fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn zip_members_are_found_bounded_and_unique() {
        let file = zip_file(&[("a/METADATA", b"Name: a"), ("b/RECORD", b"x")]);
        let found = zip_member(file.path(), |n| n.ends_with("/METADATA"), 100).unwrap();
        assert_eq!(found, Some(("a/METADATA".into(), b"Name: a".to_vec())));
        assert_eq!(zip_member(file.path(), |n| n == "nope", 100), Ok(None));
        assert!(matches!(
            zip_member(file.path(), |n| n.ends_with("/METADATA"), 3),
            Err(ArchiveError::TooLarge { .. })
        ));
        let two = zip_file(&[("a/METADATA", b""), ("b/METADATA", b"")]);
        assert!(matches!(
            zip_member(two.path(), |n| n.ends_with("/METADATA"), 100),
            Err(ArchiveError::Ambiguous(_))
        ));
        let not_zip = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_zip.path(), b"plain text").unwrap();
        assert_eq!(
            zip_member(not_zip.path(), |_| true, 100),
            Err(ArchiveError::NotArchive("zip"))
        );
    }

    #[test]
    fn tar_gz_members_are_found_and_bounded() {
        let bytes = tar_gz(&[("p-1/setup.py", b""), ("p-1/PKG-INFO", b"Name: p")]);
        let found = tar_gz_member(&bytes[..], |p| p == "p-1/PKG-INFO", 100, 1 << 20).unwrap();
        assert_eq!(found, Some(("p-1/PKG-INFO".into(), b"Name: p".to_vec())));
        assert!(matches!(
            tar_gz_member(&bytes[..], |p| p == "p-1/PKG-INFO", 2, 1 << 20),
            Err(ArchiveError::TooLarge { .. })
        ));
        assert_eq!(
            tar_gz_member(&b"not gzip"[..], |_| true, 100, 1 << 20),
            Err(ArchiveError::NotArchive("tar.gz"))
        );
        // A bomb: a megabyte of zeros in front of the member, with room for only 64 KiB of unpacking.
        let zeros = vec![0u8; 1 << 20];
        let bomb = tar_gz(&[("p-1/zeros", &zeros), ("p-1/PKG-INFO", b"Name: p")]);
        assert_eq!(
            tar_gz_member(&bomb[..], |p| p == "p-1/PKG-INFO", 100, 64 << 10),
            Err(ArchiveError::Unpacked(64 << 10))
        );
        assert!(tar_gz_member(&bomb[..], |p| p == "p-1/PKG-INFO", 100, 2 << 20).is_ok());
    }
}
