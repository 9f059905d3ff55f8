//! Reader for the boot bundle: the cpio "newc" archive that QEMU loads as the
//! initrd, holding `vms.conf` and the guest images it names.
//!
//! The reader borrows the archive in place and never allocates, so it works
//! straight on the initrd memory the DTB's `/chosen` node points at. Every
//! header is checked once by [`Bundle::parse`]; after that, lookups and
//! iteration re-walk the (now known-good) headers, which is cheap for the
//! handful of files a bundle holds.
//!
//! Hand-written rather than built on the `cpio_reader` crate because that crate
//! stops silently at the first damaged header: a truncated bundle would look
//! like a shorter valid one, and we want to say what is wrong and where.
//!
//! # Format ("newc", magic `070701`)
//!
//! Each entry is a 110-byte ASCII header (the magic, then 13 fields of 8
//! hexadecimal digits), the NUL-terminated name padded with NULs so that
//! header plus name is a multiple of 4 bytes, then the data padded to a
//! multiple of 4. Offsets are counted from the start of the archive. The entry
//! named `TRAILER!!!` ends the archive; whatever follows it (GNU cpio pads to
//! 512-byte blocks) is ignored.

use core::fmt;

/// Magic of the "new ASCII" format (the CRC variant `070702` is not accepted).
const MAGIC: &[u8; 6] = b"070701";
/// Length of the fixed part of an entry: the magic plus 13 eight-digit fields.
const HEADER_LEN: usize = 110;
/// Width of each hexadecimal header field.
const FIELD_LEN: usize = 8;
/// Name of the entry that ends the archive.
const TRAILER_NAME: &str = "TRAILER!!!";
/// File-type bits of `mode` (`S_IFMT`).
const MODE_TYPE_MASK: u32 = 0o170_000;
/// File type of a regular file (`S_IFREG`).
const MODE_REGULAR_FILE: u32 = 0o100_000;

/// The header fields in order, named for error messages.
const FIELD_NAMES: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const MODE_FIELD: usize = 1;
const FILESIZE_FIELD: usize = 6;
const NAMESIZE_FIELD: usize = 11;

/// Why the bundle could not be read. Offsets are byte offsets of the damaged
/// entry's header from the start of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// An entry's header, name or data runs past the end of the archive.
    Truncated { entry_offset: usize },
    /// An entry does not start with the newc magic `070701`.
    BadMagic { entry_offset: usize },
    /// A header field is not eight hexadecimal digits.
    BadHeaderField { entry_offset: usize, field: &'static str },
    /// An entry's name is empty, not NUL-terminated, or not UTF-8.
    BadName { entry_offset: usize, problem: &'static str },
    /// The archive ended without a `TRAILER!!!` entry, so it may be cut short.
    MissingTrailer,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { entry_offset } => {
                write!(f, "bundle entry at offset {entry_offset:#x} runs past the end of the archive")
            }
            Self::BadMagic { entry_offset } => {
                write!(f, "bundle entry at offset {entry_offset:#x} does not start with the cpio newc magic \"070701\"")
            }
            Self::BadHeaderField { entry_offset, field } => {
                write!(f, "bundle entry at offset {entry_offset:#x}: header field {field} is not 8 hexadecimal digits")
            }
            Self::BadName { entry_offset, problem } => {
                write!(f, "bundle entry at offset {entry_offset:#x}: name {problem}")
            }
            Self::MissingTrailer => {
                write!(f, "bundle ends without a {TRAILER_NAME} entry (archive cut short?)")
            }
        }
    }
}

/// A validated cpio newc archive, borrowed in place.
#[derive(Debug, Clone, Copy)]
pub struct Bundle<'a> {
    archive: &'a [u8],
}

impl<'a> Bundle<'a> {
    /// Checks every entry up to and including the trailer, so that later
    /// lookups cannot meet a damaged header.
    pub fn parse(archive: &'a [u8]) -> Result<Self, BundleError> {
        for entry in Entries::new(archive) {
            entry?;
        }
        Ok(Self { archive })
    }

    /// The contents of the regular file `name`. Names match with or without a
    /// leading `./` on either side (GNU cpio strips the `./` that
    /// `find .` prints; other writers keep it).
    /// If the archive holds the name twice, the first entry wins.
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        let wanted = without_dot_slash(name);
        self.files().find(|(entry_name, _)| *entry_name == wanted).map(|(_, data)| data)
    }

    /// Every regular file in archive order, names without a leading `./`.
    /// Directories, symlinks and other special entries are skipped.
    pub fn files(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + use<'a> {
        Entries::new(self.archive)
            .map_while(Result::ok)
            .filter(|entry| entry.mode & MODE_TYPE_MASK == MODE_REGULAR_FILE)
            .map(|entry| (without_dot_slash(entry.name), entry.data))
    }
}

/// `name` with any leading `./` components removed.
fn without_dot_slash(mut name: &str) -> &str {
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name
}

/// One archive member, as stored.
struct Entry<'a> {
    name: &'a str,
    mode: u32,
    data: &'a [u8],
}

/// Walks the entries before the trailer. Yields at most one error, then stops.
struct Entries<'a> {
    archive: &'a [u8],
    offset: usize,
    finished: bool,
}

impl<'a> Entries<'a> {
    fn new(archive: &'a [u8]) -> Self {
        Self { archive, offset: 0, finished: false }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match read_entry(self.archive, self.offset) {
            Ok(Some((entry, next_offset))) => {
                self.offset = next_offset;
                Some(Ok(entry))
            }
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

/// Reads the entry at `offset`: `Ok(None)` for the trailer, otherwise the
/// entry and the offset of the next one.
fn read_entry(archive: &[u8], offset: usize) -> Result<Option<(Entry<'_>, usize)>, BundleError> {
    if offset == archive.len() {
        return Err(BundleError::MissingTrailer);
    }
    let truncated = BundleError::Truncated { entry_offset: offset };
    let header = archive.get(offset..).and_then(|rest| rest.get(..HEADER_LEN)).ok_or(truncated)?;
    if !header.starts_with(MAGIC) {
        return Err(BundleError::BadMagic { entry_offset: offset });
    }
    let mut fields = [0u32; FIELD_NAMES.len()];
    for (index, (value, name)) in fields.iter_mut().zip(FIELD_NAMES).enumerate() {
        let start = MAGIC.len() + index * FIELD_LEN;
        *value = header
            .get(start..start + FIELD_LEN)
            .and_then(parse_hex_field)
            .ok_or(BundleError::BadHeaderField { entry_offset: offset, field: name })?;
    }
    let bad_name = |problem| BundleError::BadName { entry_offset: offset, problem };

    // Lengths come from the archive: every sum is checked, and any overflow
    // means the entry claims more bytes than memory could hold.
    let name_start = offset + HEADER_LEN;
    let name_end = name_start.checked_add(fields[NAMESIZE_FIELD] as usize).ok_or(truncated)?;
    let name_bytes = archive.get(name_start..name_end).ok_or(truncated)?;
    let Some((0, name_bytes)) = name_bytes.split_last() else {
        return Err(bad_name("is not NUL-terminated"));
    };
    if name_bytes.is_empty() {
        return Err(bad_name("is empty"));
    }
    if name_bytes.contains(&0) {
        return Err(bad_name("contains a NUL byte"));
    }
    let name = core::str::from_utf8(name_bytes).map_err(|_| bad_name("is not UTF-8"))?;
    if name == TRAILER_NAME {
        return Ok(None);
    }

    let data_start = align_up_4(name_end).ok_or(truncated)?;
    let data_end = data_start.checked_add(fields[FILESIZE_FIELD] as usize).ok_or(truncated)?;
    let data = archive.get(data_start..data_end).ok_or(truncated)?;
    let next_offset = align_up_4(data_end).ok_or(truncated)?;
    let entry = Entry { name, mode: fields[MODE_FIELD], data };
    Ok(Some((entry, next_offset)))
}

/// Parses exactly eight hexadecimal digits (no sign, no prefix).
fn parse_hex_field(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}

fn align_up_4(offset: usize) -> Option<usize> {
    offset.checked_add(3).map(|end| end & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A newc archive made by GNU cpio 2.13 (Debian 12), with:
    ///
    /// ```sh
    /// mkdir -p src/images && cd src
    /// printf '[vm a]\nimage = images/a.bin\n' > vms.conf
    /// printf 'HV\x00\xff\x7f' > images/a.bin
    /// printf 'x' > one-byte
    /// touch -d @0 vms.conf images/a.bin images one-byte .
    /// find . | LC_ALL=C sort | cpio -o -H newc --reproducible --owner=0:0 > ../test.cpio
    /// ```
    ///
    /// GNU cpio pads the archive with zeros to a 512-byte block; that padding
    /// is left out here and put back by [`gnu_archive_with_block_padding`].
    /// Each entry is split after its 110-byte header for readability.
    const GNU_CPIO_ARCHIVE: &[u8] = b"\
        07070100000000000041ED0000000000000000000000030000000000000000000000000000000000000000000000000000000200000000\
        .\0\
        07070100000001000041ED0000000000000000000000020000000000000000000000000000000000000000000000000000000700000000\
        images\0\0\0\0\
        07070100000002000081A40000000000000000000000010000000000000005000000000000000000000000000000000000000D00000000\
        images/a.bin\0\0HV\0\xff\x7f\0\0\0\
        07070100000003000081A40000000000000000000000010000000000000001000000000000000000000000000000000000000900000000\
        one-byte\0\0x\0\0\0\
        07070100000004000081A4000000000000000000000001000000000000001C000000000000000000000000000000000000000900000000\
        vms.conf\0\0[vm a]\nimage = images/a.bin\n\
        07070100000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000B00000000\
        TRAILER!!!\0\0\0\0";

    fn gnu_archive_with_block_padding() -> Vec<u8> {
        let mut archive = GNU_CPIO_ARCHIVE.to_vec();
        archive.resize(archive.len().next_multiple_of(512), 0);
        archive
    }

    /// Builds a newc archive the way the xtask writer does, with `mode` per file.
    fn newc(entries: &[(&str, u32, &[u8])], with_trailer: bool) -> Vec<u8> {
        let mut archive = Vec::new();
        let mut push = |name: &str, mode: u32, data: &[u8]| {
            let header = format!(
                "070701{:08X}{mode:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
                1,
                0,
                0,
                1,
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            archive.extend_from_slice(header.as_bytes());
            archive.extend_from_slice(name.as_bytes());
            archive.push(0);
            archive.resize(archive.len().next_multiple_of(4), 0);
            archive.extend_from_slice(data);
            archive.resize(archive.len().next_multiple_of(4), 0);
        };
        for &(name, mode, data) in entries {
            push(name, mode, data);
        }
        if with_trailer {
            push(TRAILER_NAME, 0, &[]);
        }
        archive
    }

    const REGULAR: u32 = 0o100_644;

    #[test]
    fn reads_archive_made_by_gnu_cpio() {
        let archive = gnu_archive_with_block_padding();
        let bundle = Bundle::parse(&archive).unwrap();
        let files: Vec<_> = bundle.files().collect();
        assert_eq!(
            files,
            [
                ("images/a.bin", &b"HV\0\xff\x7f"[..]),
                ("one-byte", b"x"),
                ("vms.conf", b"[vm a]\nimage = images/a.bin\n"),
            ]
        );
        assert_eq!(bundle.file("vms.conf"), Some(&b"[vm a]\nimage = images/a.bin\n"[..]));
        assert_eq!(bundle.file("./images/a.bin"), Some(&b"HV\0\xff\x7f"[..]));
        assert_eq!(bundle.file("images"), None, "directories are not files");
        assert_eq!(bundle.file("."), None);
        assert_eq!(bundle.file("missing"), None);
    }

    #[test]
    fn block_padding_after_the_trailer_is_optional() {
        let bundle = Bundle::parse(GNU_CPIO_ARCHIVE).unwrap();
        assert_eq!(bundle.files().count(), 3);
    }

    /// Cross-checks against whatever cpio the host has; skipped when none is installed
    /// (the embedded [`GNU_CPIO_ARCHIVE`] covers the format regardless).
    #[test]
    fn reads_archive_made_by_system_cpio_if_installed() {
        use std::io::Write;
        use std::process::{Command, Stdio};

        let dir = std::env::temp_dir().join(format!("hv-bundle-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("vms.conf"), "[vm x]\n").unwrap();
        let odd: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        std::fs::write(dir.join("sub/odd.bin"), &odd).unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        let child = Command::new("cpio")
            .args(["-o", "-H", "newc", "--quiet"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("cpio not installed; skipping the system cpio cross-check");
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        };
        let names = "./vms.conf\n./sub\n./sub/odd.bin\n./empty\n";
        child.stdin.take().unwrap().write_all(names.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(output.status.success());

        let bundle = Bundle::parse(&output.stdout).unwrap();
        assert_eq!(bundle.file("vms.conf"), Some(&b"[vm x]\n"[..]));
        assert_eq!(bundle.file("./sub/odd.bin"), Some(&odd[..]));
        assert_eq!(bundle.file("empty"), Some(&b""[..]));
        assert_eq!(bundle.file("sub"), None);
        assert_eq!(bundle.files().count(), 3);
    }

    #[test]
    fn names_match_with_or_without_leading_dot_slash() {
        let archive = newc(&[("./a.bin", REGULAR, b"A"), ("b.bin", REGULAR, b"BB")], true);
        let bundle = Bundle::parse(&archive).unwrap();
        assert_eq!(bundle.file("a.bin"), Some(&b"A"[..]));
        assert_eq!(bundle.file("./a.bin"), Some(&b"A"[..]));
        assert_eq!(bundle.file("./b.bin"), Some(&b"BB"[..]));
        assert_eq!(bundle.file("b.bin"), Some(&b"BB"[..]));
        assert_eq!(bundle.files().map(|(name, _)| name).collect::<Vec<_>>(), ["a.bin", "b.bin"]);
    }

    #[test]
    fn first_of_duplicate_names_wins() {
        let archive = newc(&[("a", REGULAR, b"first"), ("./a", REGULAR, b"second")], true);
        assert_eq!(Bundle::parse(&archive).unwrap().file("a"), Some(&b"first"[..]));
    }

    #[test]
    fn symlinks_are_not_files() {
        let archive = newc(&[("link", 0o120_777, b"target")], true);
        assert_eq!(Bundle::parse(&archive).unwrap().file("link"), None);
    }

    #[test]
    fn empty_archive_with_only_a_trailer_is_valid() {
        let archive = newc(&[], true);
        assert_eq!(Bundle::parse(&archive).unwrap().files().count(), 0);
    }

    #[test]
    fn rejects_missing_trailer() {
        let archive = newc(&[("a", REGULAR, b"data")], false);
        assert_eq!(Bundle::parse(&archive).unwrap_err(), BundleError::MissingTrailer);
        assert_eq!(Bundle::parse(&[]).unwrap_err(), BundleError::MissingTrailer);
    }

    #[test]
    fn rejects_every_truncation() {
        let archive = newc(&[("a.bin", REGULAR, b"12345"), ("b", REGULAR, b"")], true);
        // Only the trailer's name padding may go missing: nothing follows it.
        let trailer_name_end = archive.len() - 3;
        assert!(Bundle::parse(&archive[..trailer_name_end]).is_ok());
        for length in 0..trailer_name_end {
            assert!(Bundle::parse(&archive[..length]).is_err(), "accepted the archive cut to {length} bytes");
        }
        let error = Bundle::parse(&archive[..HEADER_LEN + 3]).unwrap_err();
        assert_eq!(error, BundleError::Truncated { entry_offset: 0 });
    }

    #[test]
    fn rejects_bad_magic() {
        let mut archive = newc(&[("a", REGULAR, b"x")], true);
        archive[5] = b'2'; // the CRC variant "070702"
        assert_eq!(Bundle::parse(&archive).unwrap_err(), BundleError::BadMagic { entry_offset: 0 });
        let zeros = [0u8; 512];
        assert_eq!(Bundle::parse(&zeros).unwrap_err(), BundleError::BadMagic { entry_offset: 0 });
    }

    #[test]
    fn rejects_bad_hex_in_any_field() {
        let good = newc(&[("a", REGULAR, b"x")], true);
        for (index, &field) in FIELD_NAMES.iter().enumerate() {
            for bad in [b'g', b'+', b' ', b'-'] {
                let mut archive = good.clone();
                archive[MAGIC.len() + index * FIELD_LEN] = bad;
                assert_eq!(
                    Bundle::parse(&archive).unwrap_err(),
                    BundleError::BadHeaderField { entry_offset: 0, field }
                );
            }
        }
    }

    #[test]
    fn huge_sizes_are_truncation_not_overflow() {
        let good = newc(&[("a", REGULAR, b"x")], true);
        for field in [FILESIZE_FIELD, NAMESIZE_FIELD] {
            let mut archive = good.clone();
            let start = MAGIC.len() + field * FIELD_LEN;
            archive[start..start + FIELD_LEN].copy_from_slice(b"FFFFFFFF");
            assert_eq!(Bundle::parse(&archive).unwrap_err(), BundleError::Truncated { entry_offset: 0 });
        }
    }

    #[test]
    fn rejects_bad_names() {
        let name_field = MAGIC.len() + NAMESIZE_FIELD * FIELD_LEN;
        let cases: [(&str, &[u8], &str); 4] = [
            ("00000000", b"", "is not NUL-terminated"),
            ("00000001", b"\0", "is empty"),
            ("00000003", b"a\0\0", "contains a NUL byte"),
            ("00000003", b"\xff\xfe\0", "is not UTF-8"),
        ];
        for (namesize, name, problem) in cases {
            let mut archive = newc(&[], true);
            archive[name_field..name_field + FIELD_LEN].copy_from_slice(namesize.as_bytes());
            archive.truncate(HEADER_LEN);
            archive.extend_from_slice(name);
            archive.resize(archive.len().next_multiple_of(4), 0);
            archive.extend(newc(&[], true));
            assert_eq!(
                Bundle::parse(&archive).unwrap_err(),
                BundleError::BadName { entry_offset: 0, problem },
                "namesize {namesize}"
            );
        }
    }

    #[test]
    fn errors_name_the_damaged_entry() {
        let mut archive = newc(&[("a", REGULAR, b"1234"), ("b", REGULAR, b"x")], true);
        let second = HEADER_LEN + 2 + 4;
        archive[second] = b'X';
        let error = Bundle::parse(&archive).unwrap_err();
        assert_eq!(error, BundleError::BadMagic { entry_offset: 0x74 });
        assert_eq!(error.to_string(), "bundle entry at offset 0x74 does not start with the cpio newc magic \"070701\"");
    }

    #[test]
    fn error_messages() {
        let cases = [
            (
                BundleError::Truncated { entry_offset: 0x200 },
                "bundle entry at offset 0x200 runs past the end of the archive",
            ),
            (
                BundleError::BadHeaderField { entry_offset: 0, field: "filesize" },
                "bundle entry at offset 0x0: header field filesize is not 8 hexadecimal digits",
            ),
            (
                BundleError::BadName { entry_offset: 4, problem: "is empty" },
                "bundle entry at offset 0x4: name is empty",
            ),
            (BundleError::MissingTrailer, "bundle ends without a TRAILER!!! entry (archive cut short?)"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    /// Flipping any single byte must give an error or a valid bundle, never a panic.
    #[test]
    fn survives_every_single_byte_corruption() {
        let good = gnu_archive_with_block_padding();
        for index in 0..GNU_CPIO_ARCHIVE.len() {
            for value in [0u8, b'0', b'F', b'f', 0xff, b'z'] {
                let mut archive = good.clone();
                archive[index] = value;
                if let Ok(bundle) = Bundle::parse(&archive) {
                    for (name, _) in bundle.files() {
                        let _ = bundle.file(name);
                    }
                }
            }
        }
    }
}
