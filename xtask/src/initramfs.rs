//! Writing a Linux initramfs: a cpio "newc" archive, gzip-compressed, with directories,
//! regular files, symlinks and character device nodes.
//!
//! Written here rather than with `cpio` (the tool or the crate): the format is small,
//! the archive needs device nodes (`/dev/console` must exist before devtmpfs is mounted,
//! or `/init` runs without a console) that a non-root `cpio` run cannot create from a
//! staging directory, and fixing every header field (inode = position, mtime 0, owner
//! root) makes the same inputs give the same bytes on any build machine.
//!
//! `bundle.rs` keeps its own regular-file writer for the hypervisor's boot bundle.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;

/// Magic of the "new ASCII" format.
const MAGIC: &str = "070701";
/// Name of the entry that ends the archive.
const TRAILER_NAME: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File(Vec<u8>),
    /// The link's target, as stored (may be relative).
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
}

/// One archive member. `path` is relative to the root (`bin/sh`, not `/bin/sh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    /// Permission bits (`0o755`); the file-type bits come from `kind`.
    pub permissions: u32,
    pub kind: EntryKind,
}

/// An initramfs under construction. The kernel's unpacker creates no missing parent
/// directories (an entry whose directory does not exist yet is silently dropped), so
/// every entry's parent must have been added before it.
#[derive(Debug, Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
    paths: HashSet<String>,
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn dir(&mut self, path: &str, permissions: u32) -> Result<&mut Self> {
        self.push(path, permissions, EntryKind::Directory)
    }

    pub fn file(&mut self, path: &str, permissions: u32, data: Vec<u8>) -> Result<&mut Self> {
        self.push(path, permissions, EntryKind::File(data))
    }

    /// A symlink (`rwxrwxrwx`, as Linux creates them) at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        ensure!(!target.is_empty() && !target.contains('\0'), "bad symlink target {target:?} for {path}");
        self.push(path, 0o777, EntryKind::Symlink(target.to_string()))
    }

    pub fn char_device(&mut self, path: &str, permissions: u32, major: u32, minor: u32) -> Result<&mut Self> {
        self.push(path, permissions, EntryKind::CharDevice { major, minor })
    }

    fn push(&mut self, path: &str, permissions: u32, kind: EntryKind) -> Result<&mut Self> {
        check_path(path)?;
        ensure!(permissions <= 0o7777, "{path}: permissions {permissions:#o} have more than 12 bits");
        if let Some((parent, _)) = path.rsplit_once('/') {
            let is_dir = self.entries.iter().any(|e| e.path == parent && e.kind == EntryKind::Directory);
            ensure!(is_dir, "{path}: add its directory {parent} first (the kernel does not create it)");
        }
        ensure!(self.paths.insert(path.to_string()), "{path} appears twice in the initramfs");
        self.entries.push(Entry { path: path.to_string(), permissions, kind });
        Ok(self)
    }

    /// The uncompressed newc archive, trailer included.
    pub fn to_newc(&self) -> Result<Vec<u8>> {
        let mut archive = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let inode = u32::try_from(index + 1).context("too many initramfs entries")?;
            let (type_bits, data, nlink, (rdev_major, rdev_minor)) = match &entry.kind {
                EntryKind::Directory => (S_IFDIR, &[][..], 2, (0, 0)),
                EntryKind::File(data) => (S_IFREG, &data[..], 1, (0, 0)),
                EntryKind::Symlink(target) => (S_IFLNK, target.as_bytes(), 1, (0, 0)),
                EntryKind::CharDevice { major, minor } => (S_IFCHR, &[][..], 1, (*major, *minor)),
            };
            let header = Header {
                inode,
                mode: type_bits | entry.permissions,
                nlink,
                size: u32::try_from(data.len()).with_context(|| format!("{} is 4 GiB or larger", entry.path))?,
                rdev_major,
                rdev_minor,
            };
            push_entry(&mut archive, &entry.path, &header, data);
        }
        let trailer = Header { inode: 0, mode: 0, nlink: 1, size: 0, rdev_major: 0, rdev_minor: 0 };
        push_entry(&mut archive, TRAILER_NAME, &trailer, &[]);
        Ok(archive)
    }

    /// The gzip-compressed archive, as the kernel takes it (the gzip header carries no
    /// timestamp or name, so it is reproducible).
    pub fn to_gzip(&self) -> Result<Vec<u8>> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&self.to_newc()?)?;
        Ok(encoder.finish()?)
    }

    /// Writes the gzip-compressed archive to `out`, leaving the file untouched when it
    /// already holds exactly these bytes (so its timestamp says when the contents changed).
    pub fn write_gzip(&self, out: &Path) -> Result<()> {
        let bytes = self.to_gzip()?;
        if std::fs::read(out).is_ok_and(|existing| existing == bytes) {
            return Ok(());
        }
        std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
    }
}

fn check_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.contains('\0')
        || path.starts_with('/')
        || path.ends_with('/')
        || path.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        bail!("bad initramfs path {path:?}: use a relative path like bin/sh, without . or .. parts");
    }
    ensure!(path != TRAILER_NAME, "initramfs path {TRAILER_NAME} is reserved for the end of the archive");
    Ok(())
}

/// The newc header fields that vary; uid, gid, mtime, device of the archive file and
/// checksum are always 0.
pub(crate) struct Header {
    pub inode: u32,
    pub mode: u32,
    pub nlink: u32,
    pub size: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Appends one newc entry (header, NUL-terminated name, data, each padded to 4
/// bytes). Shared with the VM bundle writer (`bundle.rs`).
pub(crate) fn push_entry(archive: &mut Vec<u8>, name: &str, header: &Header, data: &[u8]) {
    let name_size = u32::try_from(name.len() + 1).expect("checked path lengths fit in u32");
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
    // rdevmajor, rdevminor, namesize, check: 8 uppercase hex digits each.
    let fields = [
        header.inode,
        header.mode,
        0,
        0,
        header.nlink,
        0,
        header.size,
        0,
        0,
        header.rdev_major,
        header.rdev_minor,
        name_size,
        0,
    ];
    archive.extend_from_slice(MAGIC.as_bytes());
    for field in fields {
        archive.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    archive.extend_from_slice(name.as_bytes());
    archive.push(0);
    pad_to_4(archive);
    archive.extend_from_slice(data);
    pad_to_4(archive);
}

fn pad_to_4(archive: &mut Vec<u8>) {
    archive.resize(archive.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::Command;

    use flate2::read::GzDecoder;

    use super::*;

    fn sample() -> Initramfs {
        let mut fs = Initramfs::new();
        fs.dir("dev", 0o755).unwrap();
        fs.char_device("dev/console", 0o600, 5, 1).unwrap();
        fs.file("init", 0o755, b"#!/bin/sh\n".to_vec()).unwrap();
        fs.symlink("sh", "busybox").unwrap();
        fs
    }

    /// Byte-for-byte layout of each entry type: 110-byte header, name + NUL padded to 4,
    /// data (a symlink's target, without NUL) padded to 4.
    #[test]
    fn writes_the_exact_newc_layout() {
        let archive = sample().to_newc().unwrap();
        let expected: &[u8] = b"\
            07070100000001000041ED0000000000000000000000020000000000000000000000000000000000000000000000000000000400000000\
            dev\0\0\0\
            07070100000002000021800000000000000000000000010000000000000000000000000000000000000005000000010000000C00000000\
            dev/console\0\0\0\
            07070100000003000081ED000000000000000000000001000000000000000A000000000000000000000000000000000000000500000000\
            init\0\0#!/bin/sh\n\0\0\
            070701000000040000A1FF0000000000000000000000010000000000000007000000000000000000000000000000000000000300000000\
            sh\0\0\0\0busybox\0\
            07070100000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000B00000000\
            TRAILER!!!\0\0\0\0";
        assert_eq!(String::from_utf8_lossy(&archive), String::from_utf8_lossy(expected));
    }

    #[test]
    fn gzip_decompresses_to_the_archive() {
        let fs = sample();
        let mut unpacked = Vec::new();
        GzDecoder::new(&fs.to_gzip().unwrap()[..]).read_to_end(&mut unpacked).unwrap();
        assert_eq!(unpacked, fs.to_newc().unwrap());
        assert_eq!(fs.to_gzip().unwrap(), fs.to_gzip().unwrap(), "reproducible");
    }

    #[test]
    fn rejects_bad_paths_missing_parents_and_duplicates() {
        let mut fs = sample();
        for (path, message) in [
            ("/bin", "bad initramfs path \"/bin\": use a relative path like bin/sh, without . or .. parts"),
            ("a/../b", "bad initramfs path \"a/../b\": use a relative path like bin/sh, without . or .. parts"),
            ("dev/", "bad initramfs path \"dev/\": use a relative path like bin/sh, without . or .. parts"),
            ("", "bad initramfs path \"\": use a relative path like bin/sh, without . or .. parts"),
            ("TRAILER!!!", "initramfs path TRAILER!!! is reserved for the end of the archive"),
            ("bin/sh", "bin/sh: add its directory bin first (the kernel does not create it)"),
            ("sh/x", "sh/x: add its directory sh first (the kernel does not create it)"),
            ("init", "init appears twice in the initramfs"),
        ] {
            assert_eq!(fs.dir(path, 0o755).unwrap_err().to_string(), message, "{path}");
        }
        assert_eq!(
            fs.file("x", 0o10_000, Vec::new()).unwrap_err().to_string(),
            "x: permissions 0o10000 have more than 12 bits"
        );
        assert_eq!(fs.entries().len(), 4, "failed additions leave nothing behind");
    }

    /// GNU cpio must list what we write with the right types, modes and device numbers;
    /// skipped when it is not installed.
    #[test]
    fn gnu_cpio_lists_every_entry_type() {
        if Command::new("cpio").arg("--version").output().is_err() {
            eprintln!("cpio not installed; skipping the GNU cpio cross-check");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-initramfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("initramfs.cpio");
        std::fs::write(&archive, sample().to_newc().unwrap()).unwrap();
        let list = Command::new("cpio").args(["-t", "-v", "--quiet", "-F"]).arg(&archive).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
        let listing = String::from_utf8_lossy(&list.stdout);
        let lines: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert_eq!((lines[0][0], lines[0].last().copied()), ("drwxr-xr-x", Some("dev")));
        // crw------- 1 root root 5, 1 <date> dev/console
        assert_eq!((lines[1][0], lines[1][4], lines[1][5]), ("crw-------", "5,", "1"));
        assert_eq!(lines[1].last().copied(), Some("dev/console"));
        assert_eq!((lines[2][0], lines[2][4], lines[2].last().copied()), ("-rwxr-xr-x", "10", Some("init")));
        assert_eq!(lines[3][0], "lrwxrwxrwx");
        assert_eq!(&lines[3][lines[3].len() - 3..], ["sh", "->", "busybox"]);
    }
}
