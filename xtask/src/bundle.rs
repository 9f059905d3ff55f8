//! Writing the boot bundle: the cpio "newc" archive QEMU loads as `-initrd`,
//! holding `vms.conf` and the guest images it names. The hypervisor reads it
//! with `hypervisor::bundle`.
//!
//! Hand-written (about 40 lines) instead of using the `cpio` crate: the format
//! is trivial, and writing it here lets every header field be fixed
//! (inode = position, mtime 0, owner root) so the same inputs always give the
//! same bytes, whatever the files' timestamps or owners on the build machine.

use std::collections::HashSet;
use std::path::Path;

use crate::initramfs::Header;
use anyhow::{Context, Result, bail, ensure};

/// Every entry is a regular file, `rw-r--r--`.
const REGULAR_FILE_MODE: u32 = 0o100_644;
/// Name of the entry that ends the archive.
const TRAILER_NAME: &str = "TRAILER!!!";

/// Writes a bundle holding each `(name in archive, source file)`, in order.
pub fn write_bundle(out: &Path, files: &[(&str, &Path)]) -> Result<()> {
    let contents = files
        .iter()
        .map(|&(name, source)| {
            let data = std::fs::read(source)
                .with_context(|| format!("reading {} for bundle entry {name}", source.display()))?;
            Ok((name, data))
        })
        .collect::<Result<Vec<_>>>()?;
    write_bundle_bytes(out, &contents)
}

/// Writes a bundle holding each `(name in archive, contents)`, in order.
pub fn write_bundle_bytes(out: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let archive = newc_archive(files)?;
    std::fs::write(out, archive).with_context(|| format!("writing bundle {}", out.display()))
}

/// The newc archive of `files` followed by the trailer, each entry's name and
/// data padded to 4 bytes.
fn newc_archive(files: &[(&str, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    for (name, _) in files {
        check_name(name)?;
        // The hypervisor matches names with or without "./", so these would clash.
        ensure!(seen.insert(name.trim_start_matches("./")), "bundle entry name {name:?} appears twice");
    }
    let mut archive = Vec::new();
    for (index, (name, data)) in files.iter().enumerate() {
        let inode = u32::try_from(index + 1).context("too many bundle entries")?;
        let size = u32::try_from(data.len()).with_context(|| format!("bundle entry {name} is 4 GiB or larger"))?;
        push_entry(&mut archive, name, inode, REGULAR_FILE_MODE, data, size);
    }
    push_entry(&mut archive, TRAILER_NAME, 0, 0, &[], 0);
    Ok(archive)
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('\0') {
        bail!("bad bundle entry name {name:?}: must be non-empty and contain no NUL");
    }
    if name.trim_start_matches("./") == TRAILER_NAME {
        bail!("bundle entry name {TRAILER_NAME} is reserved for the end of the archive");
    }
    Ok(())
}

fn push_entry(archive: &mut Vec<u8>, name: &str, inode: u32, mode: u32, data: &[u8], size: u32) {
    let header = Header { inode, mode, nlink: 1, size, rdev_major: 0, rdev_minor: 0 };
    crate::initramfs::push_entry(archive, name, &header, data);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// A scratch directory under the system temp dir, removed on drop.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new(test: &str) -> Self {
            let path = std::env::temp_dir().join(format!("xtask-bundle-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Byte-for-byte layout of the newc format: 110-byte header, name + NUL
    /// padded to 4, data padded to 4. The trailer is exactly the one GNU cpio
    /// 2.13 writes.
    #[test]
    fn writes_the_exact_newc_layout() {
        let archive = newc_archive(&[("vms.conf", b"[vm a]\n".to_vec()), ("a.bin", vec![1, 2, 3, 4, 5])]).unwrap();
        let expected: &[u8] = b"\
            07070100000001000081A40000000000000000000000010000000000000007000000000000000000000000000000000000000900000000\
            vms.conf\0\0[vm a]\n\0\
            07070100000002000081A40000000000000000000000010000000000000005000000000000000000000000000000000000000600000000\
            a.bin\0\x01\x02\x03\x04\x05\0\0\0\
            07070100000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000B00000000\
            TRAILER!!!\0\0\0\0";
        assert_eq!(String::from_utf8_lossy(&archive), String::from_utf8_lossy(expected));
        assert_eq!(archive.len(), 376);
    }

    #[test]
    fn empty_bundle_is_just_the_trailer() {
        let archive = newc_archive(&[]).unwrap();
        assert_eq!(archive.len(), 124);
        assert!(archive.starts_with(b"07070100000000"));
    }

    #[test]
    fn rejects_bad_and_duplicate_names() {
        let data = Vec::new;
        for (files, message) in [
            (vec![("", data())], "bad bundle entry name \"\": must be non-empty and contain no NUL"),
            (vec![("a\0b", data())], "bad bundle entry name \"a\\0b\": must be non-empty and contain no NUL"),
            (vec![("TRAILER!!!", data())], "bundle entry name TRAILER!!! is reserved for the end of the archive"),
            (vec![("a", data()), ("./a", data())], "bundle entry name \"./a\" appears twice"),
        ] {
            assert_eq!(newc_archive(&files).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn write_bundle_reads_sources_and_reports_missing_ones() {
        let dir = ScratchDir::new("sources");
        let source = dir.0.join("guest.bin");
        std::fs::write(&source, b"guest").unwrap();
        let out = dir.0.join("bundle.cpio");
        write_bundle(&out, &[("guest.bin", &source)]).unwrap();
        let expected = newc_archive(&[("guest.bin", b"guest".to_vec())]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), expected);

        let missing = dir.0.join("missing.bin");
        let error = write_bundle(&out, &[("m", &missing)]).unwrap_err();
        assert_eq!(error.to_string(), format!("reading {} for bundle entry m", missing.display()));
    }

    /// GNU cpio must list and extract what we write; skipped when it is not installed.
    #[test]
    fn gnu_cpio_extracts_the_bundle() {
        if Command::new("cpio").arg("--version").output().is_err() {
            eprintln!("cpio not installed; skipping the GNU cpio cross-check");
            return;
        }
        let dir = ScratchDir::new("gnu");
        let odd: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let files = [("vms.conf", b"[vm a]\n".to_vec()), ("images/odd.bin", odd), ("empty", Vec::new())];
        let out = dir.0.join("bundle.cpio");
        write_bundle_bytes(&out, &files).unwrap();

        let list = Command::new("cpio").args(["-t", "--quiet", "-F"]).arg(&out).output().unwrap();
        assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
        assert_eq!(String::from_utf8_lossy(&list.stdout), "vms.conf\nimages/odd.bin\nempty\n");

        let extracted = dir.0.join("extracted");
        std::fs::create_dir(&extracted).unwrap();
        let extract = Command::new("cpio")
            .args(["-i", "-d", "--quiet", "-F"])
            .arg(&out)
            .current_dir(&extracted)
            .output()
            .unwrap();
        assert!(extract.status.success(), "{}", String::from_utf8_lossy(&extract.stderr));
        for (name, data) in &files {
            assert_eq!(&std::fs::read(extracted.join(name)).unwrap(), data, "{name}");
        }
    }
}
