//! `vms.conf`: which VMs the hypervisor runs, read from the boot bundle.
//!
//! A small line-oriented format, parsed strictly: anything not understood is
//! an error naming the line, because a typo silently ignored at boot would
//! show up much later as a VM that behaves oddly.
//!
//! # Format
//!
//! ```text
//! # Two VMs that share a 16 MiB region; the second starts when the first stops.
//! [vm fresh-tags]            # a VM
//! image = test-guest.bin     # bundle file loaded at the start of guest RAM (required)
//! memory = 64M               # guest RAM size (required)
//! cpus = 1,2                 # physical CPU index for each vCPU (required)
//! mte = on                   # on|off (default on)
//! arg = 0x10                 # passed to the guest in x0 (default 0)
//! shared = race              # shared regions this VM maps (default none)
//!
//! [vm checker]
//! image = checker.bin
//! memory = 2M
//! cpus = 3
//! shared = race
//! after = fresh-tags         # created once [vm fresh-tags] has stopped
//!
//! [shared race]              # backed by the same frames in every VM naming it
//! size = 16M                 # (required)
//! mapping = 2M               # stage-2 mapping size in every VM: 2M (default) or 4K
//! ```
//!
//! - Each line is blank, a section header `[KIND NAME]`, or a setting
//!   `key = value`. `#` starts a comment anywhere on a line, so values cannot
//!   contain it. Surrounding whitespace and CRLF line endings are ignored.
//! - Sections are `[vm NAME]` and `[shared NAME]`. Names are 1 to 31
//!   characters from `a-z`, `0-9` and `-`, unique among VMs and unique among
//!   shared regions. Every setting belongs to the section above it; each key
//!   may be set once per section.
//! - Sizes (`memory`, `size`) are a decimal or `0x` hexadecimal number with an
//!   optional `K`, `M` or `G` suffix (powers of 1024), a multiple of 2M (the
//!   stage-2 block size), from 2M to 64G. The guest map ([`machine`]) bounds
//!   them further: a shared region is at most 1G (regions sit 1 GiB apart), and
//!   a VM that names shared regions has at most 3G of RAM (below the first one).
//! - `cpus` lists 1 to [`MAX_VCPUS`] distinct physical CPU indices, comma separated; vCPU
//!   `n` runs on the `n`-th one.
//! - `arg` is a decimal or `0x` hexadecimal number of up to 64 bits.
//! - `shared` lists shared region names, comma separated; they may be defined
//!   anywhere in the file. A region no VM names is allowed.
//! - `after` names a VM defined earlier in the file, which rules out cycles.
//! - The file must define at least one VM.
//!
//! [`parse`] checks everything the text alone can tell;
//! [`Config::validate_against`] then checks the CPU indices and image names
//! against the machine and the bundle. Line numbers of the settings those
//! checks need are kept in [`VmLines`].

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Most vCPUs one VM may have: the guest machine's limit.
use hv_abi::machine;
pub use hv_abi::machine::MAX_VCPUS;
/// Largest guest RAM or shared region size.
pub const MAX_SIZE_BYTES: u64 = 64 << 30;
/// Sizes must be multiples of this: the stage-2 block size, so guest memory is
/// mapped with 2 MiB blocks and never needs page-level tables.
pub const SIZE_GRANULE_BYTES: u64 = crate::mm::BLOCK_SIZE;
/// Longest VM or shared region name.
pub const MAX_NAME_LEN: usize = 31;

/// Keys a `[vm NAME]` section accepts, in the order error messages list them.
pub const VM_KEYS: &[&str] =
    &["image", "memory", "cpus", "mte", "arg", "shared", "after", "boot", "initrd", "bootargs"];
/// Keys a `[shared NAME]` section accepts.
pub const SHARED_KEYS: &[&str] = &["size", "mapping"];

/// Everything `vms.conf` describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// VMs in file order; [`VmConfig::after`] indexes into this.
    pub vms: Vec<VmConfig>,
    /// Shared regions in file order; [`VmConfig::shared`] indexes into this.
    pub shared: Vec<SharedRegionConfig>,
}

/// One `[vm NAME]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub name: String,
    /// Bundle file loaded at the start of guest RAM.
    pub image: String,
    pub memory_bytes: u64,
    /// Physical CPU index for each vCPU: vCPU `n` runs on `cpus[n]`.
    pub cpus: Vec<usize>,
    pub mte: bool,
    /// Value of x0 when the guest starts.
    pub arg: u64,
    /// Indices into [`Config::shared`], in the order the VM lists them.
    pub shared: Vec<usize>,
    /// Index into [`Config::vms`] of the VM that must stop before this one is
    /// created; always lower than this VM's own index.
    pub after: Option<usize>,
    /// How the image is started (`boot = linux` by default).
    pub boot: BootProtocol,
    /// Bundle file placed in guest RAM as the Linux initrd.
    pub initrd: Option<String>,
    /// Kernel command line for Linux guests (`/chosen/bootargs`).
    pub bootargs: String,
    /// Where the section and its required settings are, for later errors.
    pub lines: VmLines,
}

/// How a VM's image is loaded and entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootProtocol {
    /// The Linux arm64 boot protocol: kernel at its `text_offset` (raw binaries at
    /// RAM + 0x80000), x0 = the generated device tree.
    #[default]
    Linux,
    /// The bare-metal test protocol of `hv-abi`: image at the start of RAM, x0 =
    /// `arg`, x1..x4 = RAM and shared-region addresses.
    Bare,
}

/// Line numbers (1-based) of a VM's header and required settings, so errors
/// found after parsing (see [`Config::validate_against`]) can point at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmLines {
    pub header: usize,
    pub image: usize,
    pub memory: usize,
    pub cpus: usize,
    /// 0 when there is no `initrd` key.
    pub initrd: usize,
}

/// One `[shared NAME]` section: memory mapped into every VM that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRegionConfig {
    pub name: String,
    pub size: u64,
    /// Stage-2 mapping size in every VM: 2 MiB blocks (`mapping = 2M`, the default)
    /// or 4 KiB pages (`mapping = 4K`, so each page is faulted in, and its tags
    /// sanitised, on its own first touch).
    pub mapping_bytes: u64,
    /// Line of the section header.
    pub line: usize,
}

/// The two kinds of section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Vm,
    Shared,
}

impl SectionKind {
    /// The word used in section headers.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Shared => "shared",
        }
    }

    /// The word used in prose.
    fn noun(self) -> &'static str {
        match self {
            Self::Vm => "VM",
            Self::Shared => "shared region",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Vm => VM_KEYS,
            Self::Shared => SHARED_KEYS,
        }
    }
}

/// A section as written in its header; displays as `[vm a]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub name: String,
}

impl Section {
    fn vm(name: &str) -> Self {
        Self { kind: SectionKind::Vm, name: name.to_string() }
    }

    fn shared(name: &str) -> Self {
        Self { kind: SectionKind::Shared, name: name.to_string() }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} {}]", self.kind.keyword(), self.name)
    }
}

/// A problem in `vms.conf`, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number; 0 when the problem is the file as a whole.
    pub line: usize,
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "vms.conf: {}", self.kind)
        } else {
            write!(f, "vms.conf line {}: {}", self.line, self.kind)
        }
    }
}

/// What is wrong; see each variant's message in the `Display` impl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// Neither blank, a section header nor `key = value`.
    MalformedLine {
        text: String,
    },
    /// Starts with `[` but is not `[KIND NAME]`.
    MalformedHeader {
        text: String,
    },
    UnknownSectionKind {
        kind: String,
    },
    /// A VM or shared region name outside `[a-z0-9-]{1,31}`.
    BadName {
        kind: SectionKind,
        name: String,
    },
    DuplicateSection {
        section: Section,
        first_line: usize,
    },
    KeyOutsideSection {
        key: String,
    },
    UnknownKey {
        key: String,
        section: Section,
    },
    DuplicateKey {
        key: String,
        section: Section,
        first_line: usize,
    },
    EmptyValue {
        key: String,
        section: Section,
    },
    /// Reported on the section's header line.
    MissingKey {
        key: &'static str,
        section: Section,
    },
    BadSize {
        key: String,
        section: Section,
        value: String,
        problem: SizeProblem,
    },
    BadNumber {
        key: String,
        section: Section,
        value: String,
    },
    BadSwitch {
        key: String,
        section: Section,
        value: String,
    },
    BadMapping {
        section: Section,
        value: String,
    },
    BadBoot {
        section: Section,
        value: String,
    },
    BadFileName {
        key: String,
        section: Section,
        value: String,
    },
    BadCpuList {
        section: Section,
        value: String,
        problem: CpuListProblem,
    },
    RepeatedSharedRegion {
        section: Section,
        name: String,
    },
    UnknownSharedRegion {
        section: Section,
        name: String,
    },
    UnknownAfterTarget {
        section: Section,
        target: String,
    },
    /// `after` names this VM itself or one defined further down.
    AfterTargetNotEarlier {
        section: Section,
        target: String,
    },
    NoVms,
    /// A VM that names shared regions has more RAM than fits below the first
    /// of them ([`machine::SHARED_BASE`]): its RAM would cover their addresses.
    RamCoversSharedRegions {
        section: Section,
        memory: u64,
    },
    /// A shared region larger than the spacing of shared regions in the guest
    /// map ([`machine::SHARED_STRIDE`]) would overlap the next one.
    SharedRegionTooLarge {
        section: Section,
        size: u64,
    },
    /// From [`Config::validate_against`].
    CpuNotPresent {
        section: Section,
        cpu: usize,
        cpu_count: usize,
    },
    /// From [`Config::validate_against`].
    ImageNotInBundle {
        section: Section,
        image: String,
    },
}

/// Why a size was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeProblem {
    NotASize,
    TooSmall,
    TooLarge,
    NotGranuleMultiple,
}

impl fmt::Display for SizeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotASize => "expected a number with an optional K, M or G suffix, such as 64M or 0x4000000",
            Self::TooSmall => "must be at least 2M",
            Self::TooLarge => "must be at most 64G",
            Self::NotGranuleMultiple => "must be a multiple of 2M",
        })
    }
}

/// Why a `cpus` list was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuListProblem {
    BadIndex { item: String },
    Repeated { cpu: usize },
    TooMany { count: usize },
}

impl fmt::Display for CpuListProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadIndex { item } if item.is_empty() => f.write_str("empty entry in the list"),
            Self::BadIndex { item } => write!(f, "\"{item}\" is not a CPU index"),
            Self::Repeated { cpu } => write!(f, "CPU {cpu} is listed twice"),
            Self::TooMany { count } => {
                write!(f, "{count} vCPUs, but a VM may have at most {MAX_VCPUS}")
            }
        }
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedLine { text } => {
                write!(f, "expected [vm NAME], [shared NAME] or key = value, found \"{text}\"")
            }
            Self::MalformedHeader { text } => {
                write!(f, "malformed section header \"{text}\" (expected [vm NAME] or [shared NAME])")
            }
            Self::UnknownSectionKind { kind } => {
                write!(f, "unknown section kind \"{kind}\" (expected vm or shared)")
            }
            Self::BadName { kind, name } => write!(
                f,
                "bad {} name \"{name}\" (expected 1 to {MAX_NAME_LEN} characters from a-z, 0-9 and -)",
                kind.noun()
            ),
            Self::DuplicateSection { section, first_line } => {
                write!(f, "{section} is defined twice (first on line {first_line})")
            }
            Self::KeyOutsideSection { key } => {
                write!(f, "\"{key}\" is set outside any section (start one with [vm NAME] or [shared NAME])")
            }
            Self::UnknownKey { key, section } => {
                write!(f, "unknown key \"{key}\" in {section} (expected one of: {})", Listing(section.kind.keys()))
            }
            Self::DuplicateKey { key, section, first_line } => {
                write!(f, "duplicate key \"{key}\" in {section} (first set on line {first_line})")
            }
            Self::EmptyValue { key, section } => {
                write!(f, "key \"{key}\" in {section} has no value")
            }
            Self::MissingKey { key, section } => {
                write!(f, "{section} is missing required key \"{key}\"")
            }
            Self::BadSize { key, section, value, problem } => {
                write!(f, "bad {key} \"{value}\" in {section}: {problem}")
            }
            Self::BadNumber { key, section, value } => write!(
                f,
                "bad {key} \"{value}\" in {section}: expected a decimal or 0x-prefixed hexadecimal number that fits in 64 bits"
            ),
            Self::BadSwitch { key, section, value } => {
                write!(f, "bad {key} \"{value}\" in {section}: expected on or off")
            }
            Self::BadBoot { section, value } => {
                write!(f, "bad boot \"{value}\" in {section}: expected linux or bare")
            }
            Self::BadMapping { section, value } => {
                write!(f, "bad mapping \"{value}\" in {section}: expected 4K or 2M")
            }
            Self::BadFileName { key, section, value } => {
                write!(f, "bad {key} \"{value}\" in {section}: expected a bundle file name without spaces")
            }
            Self::BadCpuList { section, value, problem } => write!(f, "bad cpus \"{value}\" in {section}: {problem}"),
            Self::RepeatedSharedRegion { section, name } => {
                write!(f, "shared in {section} lists \"{name}\" twice")
            }
            Self::UnknownSharedRegion { section, name } => {
                write!(f, "shared in {section} names \"{name}\", but there is no [shared {name}]")
            }
            Self::UnknownAfterTarget { section, target } => {
                write!(f, "after in {section} names \"{target}\", but there is no [vm {target}]")
            }
            Self::AfterTargetNotEarlier { section, target } => write!(
                f,
                "after in {section} names [vm {target}], which is not defined before {section} (after must name an earlier VM)"
            ),
            Self::NoVms => f.write_str("no VM defined (add a [vm NAME] section)"),
            Self::RamCoversSharedRegions { section, memory } => write!(
                f,
                "memory of {section} is {} MiB, but a VM with shared regions may have at most {} MiB: \
                 its RAM would reach the shared regions' guest addresses",
                memory >> 20,
                (machine::SHARED_BASE - machine::RAM_BASE) >> 20
            ),
            Self::SharedRegionTooLarge { section, size } => write!(
                f,
                "size of {section} is {} MiB, but a shared region may be at most {} MiB (shared regions sit {} MiB apart \
                 in the guest map)",
                size >> 20,
                machine::SHARED_STRIDE >> 20,
                machine::SHARED_STRIDE >> 20
            ),
            Self::CpuNotPresent { section, cpu, cpu_count } => {
                write!(f, "cpus in {section} names CPU {cpu}, but this machine has {cpu_count} CPUs (numbered from 0)")
            }
            Self::ImageNotInBundle { section, image } => {
                write!(f, "image \"{image}\" of {section} is not in the bundle")
            }
        }
    }
}

/// Displays a word list as `a, b, c`.
struct Listing(&'static [&'static str]);

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, word) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}

impl Config {
    /// Checks what the text alone cannot: that every physical CPU index is
    /// below `cpu_count` and that every image is a file in the bundle.
    pub fn validate_against(&self, cpu_count: usize, bundle_has: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        for vm in &self.vms {
            if !bundle_has(&vm.image) {
                return Err(ConfigError {
                    line: vm.lines.image,
                    kind: ConfigErrorKind::ImageNotInBundle { section: Section::vm(&vm.name), image: vm.image.clone() },
                });
            }
            if let Some(initrd) = vm.initrd.as_ref().filter(|initrd| !bundle_has(initrd)) {
                return Err(ConfigError {
                    line: vm.lines.initrd,
                    kind: ConfigErrorKind::ImageNotInBundle { section: Section::vm(&vm.name), image: initrd.clone() },
                });
            }
            if let Some(&cpu) = vm.cpus.iter().find(|&&cpu| cpu >= cpu_count) {
                return Err(ConfigError {
                    line: vm.lines.cpus,
                    kind: ConfigErrorKind::CpuNotPresent { section: Section::vm(&vm.name), cpu, cpu_count },
                });
            }
        }
        Ok(())
    }
}

/// Parses `vms.conf`; see the module documentation for the format.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::default();
    for (index, raw_line) in text.lines().enumerate() {
        parser.line(index + 1, raw_line)?;
    }
    parser.finish()
}

fn at(line: usize) -> impl FnOnce(ConfigErrorKind) -> ConfigError {
    move |kind| ConfigError { line, kind }
}

/// A setting's value and the line it was set on.
#[derive(Debug)]
struct Setting<T> {
    value: T,
    line: usize,
}

/// An optional setting: `None` until its key is seen.
type Slot<T> = Option<Setting<T>>;

/// A `[vm NAME]` section being read.
#[derive(Debug, Default)]
struct VmDraft {
    name: String,
    header_line: usize,
    image: Slot<String>,
    memory: Slot<u64>,
    cpus: Slot<Vec<usize>>,
    mte: Slot<bool>,
    arg: Slot<u64>,
    shared: Slot<Vec<String>>,
    after: Slot<String>,
    boot: Slot<BootProtocol>,
    initrd: Slot<String>,
    bootargs: Slot<String>,
}

/// A `[shared NAME]` section being read.
#[derive(Debug, Default)]
struct SharedDraft {
    name: String,
    header_line: usize,
    size: Slot<u64>,
    mapping: Slot<u64>,
}

#[derive(Debug)]
enum OpenSection {
    Vm(Box<VmDraft>),
    Shared(SharedDraft),
}

/// A complete `[vm NAME]` section whose references to other sections are
/// resolved only at the end, because shared regions may be defined later.
#[derive(Debug)]
struct ClosedVm {
    config: VmConfig,
    shared_names: Slot<Vec<String>>,
    after_name: Slot<String>,
}

#[derive(Debug, Default)]
struct Parser {
    open: Option<OpenSection>,
    vms: Vec<ClosedVm>,
    shared: Vec<SharedRegionConfig>,
}

impl Parser {
    fn line(&mut self, line: usize, raw: &str) -> Result<(), ConfigError> {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            Ok(())
        } else if content.starts_with('[') {
            self.close_section()?;
            self.open_section(line, content).map_err(at(line))
        } else {
            self.setting(line, content).map_err(at(line))
        }
    }

    fn open_section(&mut self, line: usize, content: &str) -> Result<(), ConfigErrorKind> {
        let malformed = || ConfigErrorKind::MalformedHeader { text: content.to_string() };
        let inner = content.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).ok_or_else(malformed)?;
        let mut words = inner.split_whitespace();
        let (Some(kind), Some(name), None) = (words.next(), words.next(), words.next()) else {
            return Err(malformed());
        };
        let kind = match kind {
            "vm" => SectionKind::Vm,
            "shared" => SectionKind::Shared,
            _ => {
                return Err(ConfigErrorKind::UnknownSectionKind { kind: kind.to_string() });
            }
        };
        check_name(kind, name)?;
        let first_line = match kind {
            SectionKind::Vm => self.vms.iter().find(|vm| vm.config.name == name).map(|vm| vm.config.lines.header),
            SectionKind::Shared => self.shared.iter().find(|region| region.name == name).map(|region| region.line),
        };
        if let Some(first_line) = first_line {
            return Err(ConfigErrorKind::DuplicateSection {
                section: Section { kind, name: name.to_string() },
                first_line,
            });
        }
        let name = name.to_string();
        self.open = Some(match kind {
            SectionKind::Vm => OpenSection::Vm(Box::new(VmDraft { name, header_line: line, ..VmDraft::default() })),
            SectionKind::Shared => {
                OpenSection::Shared(SharedDraft { name, header_line: line, ..SharedDraft::default() })
            }
        });
        Ok(())
    }

    fn setting(&mut self, line: usize, content: &str) -> Result<(), ConfigErrorKind> {
        let malformed = || ConfigErrorKind::MalformedLine { text: content.to_string() };
        let (key, value) = content.split_once('=').ok_or_else(malformed)?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(malformed());
        }
        match &mut self.open {
            None => Err(ConfigErrorKind::KeyOutsideSection { key: key.to_string() }),
            Some(OpenSection::Vm(draft)) => draft.set(key, value, line),
            Some(OpenSection::Shared(draft)) => draft.set(key, value, line),
        }
    }

    /// Ends the open section; a missing required key is reported on its header line.
    fn close_section(&mut self) -> Result<(), ConfigError> {
        match self.open.take() {
            None => Ok(()),
            Some(OpenSection::Vm(draft)) => {
                self.vms.push((*draft).close()?);
                Ok(())
            }
            Some(OpenSection::Shared(draft)) => {
                self.shared.push(draft.close()?);
                Ok(())
            }
        }
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        self.close_section()?;
        if self.vms.is_empty() {
            return Err(ConfigError { line: 0, kind: ConfigErrorKind::NoVms });
        }
        if let Some(region) = self.shared.iter().find(|region| region.size > machine::SHARED_STRIDE) {
            return Err(ConfigError {
                line: region.line,
                kind: ConfigErrorKind::SharedRegionTooLarge {
                    section: Section::shared(&region.name),
                    size: region.size,
                },
            });
        }
        let names: Vec<String> = self.vms.iter().map(|vm| vm.config.name.clone()).collect();
        let mut vms = Vec::with_capacity(self.vms.len());
        for (index, vm) in self.vms.into_iter().enumerate() {
            vms.push(vm.resolve(index, &names, &self.shared)?);
        }
        Ok(Config { vms, shared: self.shared })
    }
}

impl VmDraft {
    fn set(&mut self, key: &str, value: &str, line: usize) -> Result<(), ConfigErrorKind> {
        let field = Field { key, value, line, section: Section::vm(&self.name) };
        match key {
            "image" => field.store(&mut self.image, Field::file_name),
            "memory" => field.store(&mut self.memory, Field::size),
            "cpus" => field.store(&mut self.cpus, Field::cpu_list),
            "mte" => field.store(&mut self.mte, Field::switch),
            "arg" => field.store(&mut self.arg, Field::number),
            "shared" => field.store(&mut self.shared, Field::shared_region_names),
            "after" => field.store(&mut self.after, Field::vm_name),
            "boot" => field.store(&mut self.boot, Field::boot_protocol),
            "initrd" => field.store(&mut self.initrd, Field::file_name),
            "bootargs" => field.store(&mut self.bootargs, Field::text),
            _ => Err(field.unknown_key()),
        }
    }

    fn close(self) -> Result<ClosedVm, ConfigError> {
        match (self.image, self.memory, self.cpus) {
            (Some(image), Some(memory), Some(cpus)) => Ok(ClosedVm {
                config: VmConfig {
                    name: self.name,
                    image: image.value,
                    memory_bytes: memory.value,
                    cpus: cpus.value,
                    mte: self.mte.is_none_or(|mte| mte.value),
                    arg: self.arg.map_or(0, |arg| arg.value),
                    shared: Vec::new(),
                    after: None,
                    boot: self.boot.map_or(BootProtocol::Linux, |b| b.value),
                    bootargs: self.bootargs.map_or_else(String::new, |b| b.value),
                    lines: VmLines {
                        header: self.header_line,
                        image: image.line,
                        memory: memory.line,
                        cpus: cpus.line,
                        initrd: self.initrd.as_ref().map_or(0, |i| i.line),
                    },
                    initrd: self.initrd.map(|i| i.value),
                },
                shared_names: self.shared,
                after_name: self.after,
            }),
            (image, memory, _) => {
                let key = if image.is_none() {
                    "image"
                } else if memory.is_none() {
                    "memory"
                } else {
                    "cpus"
                };
                Err(ConfigError {
                    line: self.header_line,
                    kind: ConfigErrorKind::MissingKey { key, section: Section::vm(&self.name) },
                })
            }
        }
    }
}

impl SharedDraft {
    fn set(&mut self, key: &str, value: &str, line: usize) -> Result<(), ConfigErrorKind> {
        let field = Field { key, value, line, section: Section { kind: SectionKind::Shared, name: self.name.clone() } };
        match key {
            "size" => field.store(&mut self.size, Field::size),
            "mapping" => field.store(&mut self.mapping, Field::mapping),
            _ => Err(field.unknown_key()),
        }
    }

    fn close(self) -> Result<SharedRegionConfig, ConfigError> {
        let Some(size) = self.size else {
            return Err(ConfigError {
                line: self.header_line,
                kind: ConfigErrorKind::MissingKey {
                    key: "size",
                    section: Section { kind: SectionKind::Shared, name: self.name },
                },
            });
        };
        Ok(SharedRegionConfig {
            name: self.name,
            size: size.value,
            mapping_bytes: self.mapping.map_or(crate::mm::BLOCK_SIZE, |m| m.value),
            line: self.header_line,
        })
    }
}

impl ClosedVm {
    /// Turns region and VM names into indices; `index` is this VM's own.
    fn resolve(
        mut self,
        index: usize,
        vm_names: &[String],
        shared: &[SharedRegionConfig],
    ) -> Result<VmConfig, ConfigError> {
        let section = || Section::vm(&self.config.name);
        if let Some(names) = &self.shared_names {
            for name in &names.value {
                let region = shared.iter().position(|region| region.name == *name).ok_or_else(|| ConfigError {
                    line: names.line,
                    kind: ConfigErrorKind::UnknownSharedRegion { section: section(), name: name.clone() },
                })?;
                self.config.shared.push(region);
            }
            if !self.config.shared.is_empty() && self.config.memory_bytes > machine::SHARED_BASE - machine::RAM_BASE {
                return Err(ConfigError {
                    line: self.config.lines.memory,
                    kind: ConfigErrorKind::RamCoversSharedRegions {
                        section: section(),
                        memory: self.config.memory_bytes,
                    },
                });
            }
        }
        if let Some(target) = &self.after_name {
            let error = |kind| ConfigError { line: target.line, kind };
            let target_index = vm_names.iter().position(|name| *name == target.value).ok_or_else(|| {
                error(ConfigErrorKind::UnknownAfterTarget { section: section(), target: target.value.clone() })
            })?;
            if target_index >= index {
                return Err(error(ConfigErrorKind::AfterTargetNotEarlier {
                    section: section(),
                    target: target.value.clone(),
                }));
            }
            self.config.after = Some(target_index);
        }
        Ok(self.config)
    }
}

/// One `key = value` line inside a section, with what error messages need.
struct Field<'t> {
    key: &'t str,
    value: &'t str,
    line: usize,
    section: Section,
}

impl Field<'_> {
    /// Parses the value into `slot`, unless the key was already set or has no value.
    fn store<T>(
        &self,
        slot: &mut Slot<T>,
        parse: impl FnOnce(&Self) -> Result<T, ConfigErrorKind>,
    ) -> Result<(), ConfigErrorKind> {
        if let Some(first) = slot {
            return Err(ConfigErrorKind::DuplicateKey {
                key: self.key.to_string(),
                section: self.section.clone(),
                first_line: first.line,
            });
        }
        if self.value.is_empty() {
            return Err(ConfigErrorKind::EmptyValue { key: self.key.to_string(), section: self.section.clone() });
        }
        *slot = Some(Setting { value: parse(self)?, line: self.line });
        Ok(())
    }

    fn unknown_key(&self) -> ConfigErrorKind {
        ConfigErrorKind::UnknownKey { key: self.key.to_string(), section: self.section.clone() }
    }

    fn size(&self) -> Result<u64, ConfigErrorKind> {
        parse_size(self.value).map_err(|problem| ConfigErrorKind::BadSize {
            key: self.key.to_string(),
            section: self.section.clone(),
            value: self.value.to_string(),
            problem,
        })
    }

    fn number(&self) -> Result<u64, ConfigErrorKind> {
        parse_u64(self.value).ok_or_else(|| ConfigErrorKind::BadNumber {
            key: self.key.to_string(),
            section: self.section.clone(),
            value: self.value.to_string(),
        })
    }

    fn boot_protocol(&self) -> Result<BootProtocol, ConfigErrorKind> {
        match self.value {
            "linux" => Ok(BootProtocol::Linux),
            "bare" => Ok(BootProtocol::Bare),
            _ => Err(ConfigErrorKind::BadBoot { section: self.section.clone(), value: self.value.to_string() }),
        }
    }

    /// Free text (the rest of the line, comments removed), e.g. a kernel command line.
    fn text(&self) -> Result<String, ConfigErrorKind> {
        Ok(self.value.to_string())
    }

    fn mapping(&self) -> Result<u64, ConfigErrorKind> {
        match self.value {
            "4K" => Ok(4 << 10),
            "2M" => Ok(2 << 20),
            _ => Err(ConfigErrorKind::BadMapping { section: self.section.clone(), value: self.value.to_string() }),
        }
    }

    fn switch(&self) -> Result<bool, ConfigErrorKind> {
        match self.value {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(ConfigErrorKind::BadSwitch {
                key: self.key.to_string(),
                section: self.section.clone(),
                value: self.value.to_string(),
            }),
        }
    }

    fn file_name(&self) -> Result<String, ConfigErrorKind> {
        if self.value.chars().any(|character| character.is_whitespace() || character.is_control()) {
            return Err(ConfigErrorKind::BadFileName {
                key: self.key.to_string(),
                section: self.section.clone(),
                value: self.value.to_string(),
            });
        }
        Ok(self.value.to_string())
    }

    fn cpu_list(&self) -> Result<Vec<usize>, ConfigErrorKind> {
        let bad = |problem| ConfigErrorKind::BadCpuList {
            section: self.section.clone(),
            value: self.value.to_string(),
            problem,
        };
        let count = self.value.split(',').count();
        if count > MAX_VCPUS {
            return Err(bad(CpuListProblem::TooMany { count }));
        }
        let mut cpus = Vec::with_capacity(count);
        for item in self.value.split(',').map(str::trim) {
            let cpu = parse_decimal(item).ok_or_else(|| bad(CpuListProblem::BadIndex { item: item.to_string() }))?;
            if cpus.contains(&cpu) {
                return Err(bad(CpuListProblem::Repeated { cpu }));
            }
            cpus.push(cpu);
        }
        Ok(cpus)
    }

    fn shared_region_names(&self) -> Result<Vec<String>, ConfigErrorKind> {
        let mut names: Vec<String> = Vec::new();
        for name in self.value.split(',').map(str::trim) {
            check_name(SectionKind::Shared, name)?;
            if names.iter().any(|listed| listed == name) {
                return Err(ConfigErrorKind::RepeatedSharedRegion {
                    section: self.section.clone(),
                    name: name.to_string(),
                });
            }
            names.push(name.to_string());
        }
        Ok(names)
    }

    fn vm_name(&self) -> Result<String, ConfigErrorKind> {
        check_name(SectionKind::Vm, self.value)?;
        Ok(self.value.to_string())
    }
}

/// Names are `[a-z0-9-]{1,31}`: short and plain enough for log lines and
/// fixed-size buffers.
fn check_name(kind: SectionKind, name: &str) -> Result<(), ConfigErrorKind> {
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if valid { Ok(()) } else { Err(ConfigErrorKind::BadName { kind, name: name.to_string() }) }
}

/// Plain decimal digits only (no sign), as a `usize`.
fn parse_decimal(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Decimal, or hexadecimal after a `0x` prefix; no sign, no separators.
fn parse_u64(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|digit| digit.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A number with an optional binary `K`/`M`/`G` suffix, in bytes, checked
/// against the 2M granule and the 64G limit.
fn parse_size(text: &str) -> Result<u64, SizeProblem> {
    let (number, unit) = if let Some(number) = text.strip_suffix('K') {
        (number, 1 << 10)
    } else if let Some(number) = text.strip_suffix('M') {
        (number, 1 << 20)
    } else if let Some(number) = text.strip_suffix('G') {
        (number, 1 << 30)
    } else {
        (text, 1)
    };
    let bytes = parse_u64(number).ok_or(SizeProblem::NotASize)?.checked_mul(unit).ok_or(SizeProblem::TooLarge)?;
    if bytes < SIZE_GRANULE_BYTES {
        Err(SizeProblem::TooSmall)
    } else if bytes > MAX_SIZE_BYTES {
        Err(SizeProblem::TooLarge)
    } else if bytes % SIZE_GRANULE_BYTES != 0 {
        Err(SizeProblem::NotGranuleMultiple)
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the module documentation.
    const EXAMPLE: &str = "\
# Two VMs that share a 16 MiB region; the second starts when the first stops.
[vm fresh-tags]            # a VM
image = test-guest.bin     # bundle file loaded at the start of guest RAM (required)
memory = 64M               # guest RAM size (required)
cpus = 1,2                 # physical CPU index for each vCPU (required)
mte = on                   # on|off (default on)
arg = 0x10                 # passed to the guest in x0 (default 0)
shared = race              # shared regions this VM maps (default none)

[vm checker]
image = checker.bin
memory = 2M
cpus = 3
shared = race
after = fresh-tags         # created once [vm fresh-tags] has stopped

[shared race]              # backed by the same frames in every VM naming it
size = 16M                 # (required)
";

    const MIB: u64 = 1 << 20;

    fn error(text: &str) -> ConfigError {
        parse(text).expect_err("the config should be rejected")
    }

    /// Parses `text` expecting an error and returns its full message.
    fn message(text: &str) -> String {
        error(text).to_string()
    }

    /// A minimal valid VM section followed by `extra` lines.
    fn vm_with(extra: &str) -> String {
        format!("[vm a]\nimage = a.bin\nmemory = 2M\ncpus = 0\n{extra}")
    }

    #[test]
    fn parses_the_documented_example() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(
            config,
            Config {
                vms: vec![
                    VmConfig {
                        name: "fresh-tags".into(),
                        image: "test-guest.bin".into(),
                        memory_bytes: 64 * MIB,
                        cpus: vec![1, 2],
                        mte: true,
                        arg: 0x10,
                        shared: vec![0],
                        after: None,
                        boot: BootProtocol::Linux,
                        initrd: None,
                        bootargs: String::new(),
                        lines: VmLines { header: 2, image: 3, memory: 4, cpus: 5, initrd: 0 },
                    },
                    VmConfig {
                        name: "checker".into(),
                        image: "checker.bin".into(),
                        memory_bytes: 2 * MIB,
                        cpus: vec![3],
                        mte: true,
                        arg: 0,
                        shared: vec![0],
                        after: Some(0),
                        boot: BootProtocol::Linux,
                        initrd: None,
                        bootargs: String::new(),
                        lines: VmLines { header: 10, image: 11, memory: 12, cpus: 13, initrd: 0 },
                    },
                ],
                shared: vec![SharedRegionConfig {
                    name: "race".into(),
                    size: 16 * MIB,
                    mapping_bytes: 2 * MIB,
                    line: 17,
                }],
            }
        );
    }

    #[test]
    fn module_doc_shows_the_tested_example() {
        let doc: String = include_str!("config.rs")
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .map(|line| line.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(doc.contains(EXAMPLE.trim_end()), "module doc and EXAMPLE differ");
    }

    #[test]
    fn optional_keys_have_defaults() {
        let config = parse(&vm_with("")).unwrap();
        let vm = &config.vms[0];
        assert!(vm.mte);
        assert_eq!(vm.arg, 0);
        assert!(vm.shared.is_empty());
        assert_eq!(vm.after, None);
        assert!(config.shared.is_empty());
    }

    #[test]
    fn optional_keys_can_be_set() {
        let config = parse(&vm_with(
            "mte = off\narg = 18446744073709551615\nshared = r2, r1\n[shared r1]\nsize = 2M\n[shared r2]\nsize = 4M\n[vm b]\nimage = b.bin\nmemory = 2M\ncpus = 1\nafter = a\narg = 0xFFFFffffFFFFffff",
        ))
        .unwrap();
        let a = &config.vms[0];
        assert!(!a.mte);
        assert_eq!(a.arg, u64::MAX);
        assert_eq!(a.shared, [1, 0]);
        assert_eq!(config.vms[1].after, Some(0));
        assert_eq!(config.vms[1].arg, u64::MAX);
    }

    #[test]
    fn sizes() {
        let cases = [
            ("2M", 2 * MIB),
            ("0x200000", 2 * MIB),
            ("2097152", 2 * MIB),
            ("2048K", 2 * MIB),
            ("1G", 1024 * MIB),
            ("0x2M", 2 * MIB),
            ("64G", 64 << 30),
            ("0x1000000000", 64 << 30),
        ];
        for (text, bytes) in cases {
            let config = parse(&format!("[vm a]\nimage = a\nmemory = {text}\ncpus = 0\n")).unwrap();
            assert_eq!(config.vms[0].memory_bytes, bytes, "memory = {text}");
        }
    }

    #[test]
    fn comments_blank_lines_and_whitespace_are_ignored() {
        let text = "\n# leading comment\n\n   \t\n  [vm a]  # trailing comment\n\timage=a.bin#no space\n memory =\t2M \n# between\ncpus= 0 , 1 \n\n#\n";
        let vm = &parse(text).unwrap().vms[0];
        assert_eq!(vm.image, "a.bin");
        assert_eq!(vm.memory_bytes, 2 * MIB);
        assert_eq!(vm.cpus, [0, 1]);
        assert_eq!(vm.lines.header, 5);
        assert_eq!(vm.lines.cpus, 9);
    }

    #[test]
    fn crlf_line_endings_and_a_byte_order_mark() {
        let unix = parse(EXAMPLE).unwrap();
        let windows = EXAMPLE.replace('\n', "\r\n");
        assert_eq!(parse(&windows).unwrap(), unix);
        assert_eq!(parse(&format!("\u{feff}{windows}")).unwrap(), unix);
        assert_eq!(error("[vm a]\r\nimage = a\r\nmemroy = 2M\r\n").line, 3, "line numbers count CRLF lines");
    }

    #[test]
    fn shared_regions_may_be_defined_before_or_after_use() {
        let config = parse(&format!(
            "[shared early]\nsize = 2M\n{}",
            vm_with("shared = early,late\n[shared late]\nsize = 2M\n")
        ))
        .unwrap();
        assert_eq!(config.vms[0].shared, [0, 1]);
        assert_eq!(config.shared[1].line, 8);
    }

    #[test]
    fn unused_shared_regions_are_allowed() {
        let config = parse(&vm_with("[shared spare]\nsize = 2M\n")).unwrap();
        assert_eq!(config.shared.len(), 1);
    }

    #[test]
    fn vms_and_shared_regions_have_separate_names() {
        let config = parse(&vm_with("shared = a\n[shared a]\nsize = 2M\n")).unwrap();
        assert_eq!(config.vms[0].shared, [0]);
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            (
                "just words\n",
                1,
                "vms.conf line 1: expected [vm NAME], [shared NAME] or key = value, found \"just words\"",
            ),
            ("[vm a]\n= 3\n", 2, "vms.conf line 2: expected [vm NAME], [shared NAME] or key = value, found \"= 3\""),
            ("[vm a\n", 1, "vms.conf line 1: malformed section header \"[vm a\" (expected [vm NAME] or [shared NAME])"),
            ("[vm]\n", 1, "vms.conf line 1: malformed section header \"[vm]\" (expected [vm NAME] or [shared NAME])"),
            (
                "[vm a b]\n",
                1,
                "vms.conf line 1: malformed section header \"[vm a b]\" (expected [vm NAME] or [shared NAME])",
            ),
            (
                "[vm a] extra\n",
                1,
                "vms.conf line 1: malformed section header \"[vm a] extra\" (expected [vm NAME] or [shared NAME])",
            ),
            ("[guest a]\n", 1, "vms.conf line 1: unknown section kind \"guest\" (expected vm or shared)"),
            (
                "image = a.bin\n",
                1,
                "vms.conf line 1: \"image\" is set outside any section (start one with [vm NAME] or [shared NAME])",
            ),
            ("", 0, "vms.conf: no VM defined (add a [vm NAME] section)"),
            ("# only\n[shared r]\nsize = 2M\n", 0, "vms.conf: no VM defined (add a [vm NAME] section)"),
        ];
        for (text, line, expected) in cases {
            let error = error(text);
            assert_eq!(error.to_string(), expected, "for {text:?}");
            assert_eq!(error.line, line, "for {text:?}");
        }
    }

    #[test]
    fn name_errors() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(parse(&format!("[vm {}]\nimage = a\nmemory = 2M\ncpus = 0\n", &long[1..])).is_ok());
        let cases = [
            (
                "[vm Fresh]\n".to_string(),
                "vms.conf line 1: bad VM name \"Fresh\" (expected 1 to 31 characters from a-z, 0-9 and -)",
            ),
            (
                "[vm a_b]\n".to_string(),
                "vms.conf line 1: bad VM name \"a_b\" (expected 1 to 31 characters from a-z, 0-9 and -)",
            ),
            (
                format!("[shared {long}]\n"),
                "vms.conf line 1: bad shared region name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" (expected 1 to 31 characters from a-z, 0-9 and -)",
            ),
            (vm_with("[vm a]\n"), "vms.conf line 5: [vm a] is defined twice (first on line 1)"),
            (
                vm_with("[shared r]\nsize = 2M\n[shared r]\n"),
                "vms.conf line 7: [shared r] is defined twice (first on line 5)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(&text), expected, "for {text:?}");
        }
    }

    #[test]
    fn key_errors() {
        let cases = [
            (
                "[vm a]\nimage = a.bin\nmemroy = 64M\n".to_string(),
                "vms.conf line 3: unknown key \"memroy\" in [vm a] (expected one of: image, memory, cpus, mte, arg, shared, after, boot, initrd, bootargs)",
            ),
            (
                vm_with("[shared r]\nmemory = 2M\n"),
                "vms.conf line 6: unknown key \"memory\" in [shared r] (expected one of: size, mapping)",
            ),
            (vm_with("memory = 4M\n"), "vms.conf line 5: duplicate key \"memory\" in [vm a] (first set on line 3)"),
            (
                vm_with("mte = on\nmte = off\n"),
                "vms.conf line 6: duplicate key \"mte\" in [vm a] (first set on line 5)",
            ),
            ("[vm a]\nimage =\n".to_string(), "vms.conf line 2: key \"image\" in [vm a] has no value"),
            (vm_with("arg = # just a comment\n"), "vms.conf line 5: key \"arg\" in [vm a] has no value"),
        ];
        for (text, expected) in cases {
            assert_eq!(message(&text), expected, "for {text:?}");
        }
    }

    #[test]
    fn missing_keys_are_reported_on_the_section_header() {
        let cases = [
            ("# c\n[vm a]\nmemory = 2M\ncpus = 0\n", "vms.conf line 2: [vm a] is missing required key \"image\""),
            ("[vm a]\nimage = a\ncpus = 0\n[vm b]\n", "vms.conf line 1: [vm a] is missing required key \"memory\""),
            ("[vm a]\nimage = a\nmemory = 2M\n", "vms.conf line 1: [vm a] is missing required key \"cpus\""),
            (
                "[vm a]\nimage = a\nmemory = 2M\ncpus = 0\n\n[shared r]\n\n",
                "vms.conf line 6: [shared r] is missing required key \"size\"",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(text), expected, "for {text:?}");
        }
    }

    #[test]
    fn value_errors() {
        let not_a_size = "expected a number with an optional K, M or G suffix, such as 64M or 0x4000000";
        let memory = |value: &str| format!("[vm a]\nimage = a\nmemory = {value}\n");
        let cases = [
            (memory("64X"), format!("vms.conf line 3: bad memory \"64X\" in [vm a]: {not_a_size}")),
            (memory("64m"), format!("vms.conf line 3: bad memory \"64m\" in [vm a]: {not_a_size}")),
            (memory("64 M"), format!("vms.conf line 3: bad memory \"64 M\" in [vm a]: {not_a_size}")),
            (memory("-2M"), format!("vms.conf line 3: bad memory \"-2M\" in [vm a]: {not_a_size}")),
            (memory("+2M"), format!("vms.conf line 3: bad memory \"+2M\" in [vm a]: {not_a_size}")),
            (memory("M"), format!("vms.conf line 3: bad memory \"M\" in [vm a]: {not_a_size}")),
            (memory("0x"), format!("vms.conf line 3: bad memory \"0x\" in [vm a]: {not_a_size}")),
            (memory("0X200000"), format!("vms.conf line 3: bad memory \"0X200000\" in [vm a]: {not_a_size}")),
            (memory("0"), "vms.conf line 3: bad memory \"0\" in [vm a]: must be at least 2M".into()),
            (memory("1K"), "vms.conf line 3: bad memory \"1K\" in [vm a]: must be at least 2M".into()),
            (memory("3M"), "vms.conf line 3: bad memory \"3M\" in [vm a]: must be a multiple of 2M".into()),
            (memory("0x200001"), "vms.conf line 3: bad memory \"0x200001\" in [vm a]: must be a multiple of 2M".into()),
            (memory("66G"), "vms.conf line 3: bad memory \"66G\" in [vm a]: must be at most 64G".into()),
            (
                memory("18446744073709551615G"),
                "vms.conf line 3: bad memory \"18446744073709551615G\" in [vm a]: must be at most 64G".into(),
            ),
            (
                memory("99999999999999999999"),
                format!("vms.conf line 3: bad memory \"99999999999999999999\" in [vm a]: {not_a_size}"),
            ),
            (
                vm_with("[shared r]\nsize = 1M\n"),
                "vms.conf line 6: bad size \"1M\" in [shared r]: must be at least 2M".into(),
            ),
            (
                vm_with("[shared r]\nsize = 128G\n"),
                "vms.conf line 6: bad size \"128G\" in [shared r]: must be at most 64G".into(),
            ),
            (
                vm_with("arg = ten\n"),
                "vms.conf line 5: bad arg \"ten\" in [vm a]: expected a decimal or 0x-prefixed hexadecimal number that fits in 64 bits".into(),
            ),
            (
                vm_with("arg = 18446744073709551616\n"),
                "vms.conf line 5: bad arg \"18446744073709551616\" in [vm a]: expected a decimal or 0x-prefixed hexadecimal number that fits in 64 bits".into(),
            ),
            (
                vm_with("arg = -1\n"),
                "vms.conf line 5: bad arg \"-1\" in [vm a]: expected a decimal or 0x-prefixed hexadecimal number that fits in 64 bits".into(),
            ),
            (
                vm_with("mte = yes\n"),
                "vms.conf line 5: bad mte \"yes\" in [vm a]: expected on or off".into(),
            ),
            (
                vm_with("mte = ON\n"),
                "vms.conf line 5: bad mte \"ON\" in [vm a]: expected on or off".into(),
            ),
            (
                "[vm a]\nimage = my guest.bin\n".into(),
                "vms.conf line 2: bad image \"my guest.bin\" in [vm a]: expected a bundle file name without spaces".into(),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(&text), expected, "for {text:?}");
        }
    }

    #[test]
    fn cpu_list_errors() {
        let cpus = |value: &str| format!("[vm a]\nimage = a\nmemory = 2M\ncpus = {value}\n");
        let many = (0..=MAX_VCPUS).map(|cpu| cpu.to_string()).collect::<Vec<_>>().join(",");
        assert!(parse(&cpus(&many[..many.rfind(',').unwrap()])).is_ok(), "64 vCPUs are allowed");
        let cases = [
            (cpus("1,,2"), "vms.conf line 4: bad cpus \"1,,2\" in [vm a]: empty entry in the list".to_string()),
            (cpus("1,"), "vms.conf line 4: bad cpus \"1,\" in [vm a]: empty entry in the list".into()),
            (cpus("one"), "vms.conf line 4: bad cpus \"one\" in [vm a]: \"one\" is not a CPU index".into()),
            (cpus("0x1"), "vms.conf line 4: bad cpus \"0x1\" in [vm a]: \"0x1\" is not a CPU index".into()),
            (cpus("1 2"), "vms.conf line 4: bad cpus \"1 2\" in [vm a]: \"1 2\" is not a CPU index".into()),
            (
                cpus("99999999999999999999999"),
                "vms.conf line 4: bad cpus \"99999999999999999999999\" in [vm a]: \"99999999999999999999999\" is not a CPU index".into(),
            ),
            (cpus("1, 2, 1"), "vms.conf line 4: bad cpus \"1, 2, 1\" in [vm a]: CPU 1 is listed twice".into()),
            (
                cpus(&many),
                format!("vms.conf line 4: bad cpus \"{many}\" in [vm a]: 65 vCPUs, but a VM may have at most 64"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(&text), expected, "for {text:?}");
        }
    }

    #[test]
    fn reference_errors() {
        let b = "[vm b]\nimage = b\nmemory = 2M\ncpus = 1\n";
        let cases = [
            (
                vm_with("shared = race\n"),
                "vms.conf line 5: shared in [vm a] names \"race\", but there is no [shared race]",
            ),
            (vm_with("shared = r, r\n[shared r]\nsize = 2M\n"), "vms.conf line 5: shared in [vm a] lists \"r\" twice"),
            (
                vm_with("shared = r,\n"),
                "vms.conf line 5: bad shared region name \"\" (expected 1 to 31 characters from a-z, 0-9 and -)",
            ),
            (
                vm_with("after = nobody\n"),
                "vms.conf line 5: after in [vm a] names \"nobody\", but there is no [vm nobody]",
            ),
            (
                vm_with(&format!("after = b\n{b}")),
                "vms.conf line 5: after in [vm a] names [vm b], which is not defined before [vm a] (after must name an earlier VM)",
            ),
            (
                vm_with("after = a\n"),
                "vms.conf line 5: after in [vm a] names [vm a], which is not defined before [vm a] (after must name an earlier VM)",
            ),
            (
                vm_with("after = A\n"),
                "vms.conf line 5: bad VM name \"A\" (expected 1 to 31 characters from a-z, 0-9 and -)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(&text), expected, "for {text:?}");
        }
    }

    #[test]
    fn the_guest_map_bounds_ram_beside_shared_regions_and_each_region() {
        let vm = |memory: &str, size: &str| {
            format!("[vm a]\nimage = a\nmemory = {memory}\ncpus = 0\nshared = r\n[shared r]\nsize = {size}\n")
        };
        assert!(parse(&vm("3G", "1G")).is_ok(), "RAM up to the first shared region, a region up to the stride");
        assert_eq!(
            message(&vm("3074M", "2M")),
            "vms.conf line 3: memory of [vm a] is 3074 MiB, but a VM with shared regions may have at most 3072 MiB: \
             its RAM would reach the shared regions' guest addresses"
        );
        assert_eq!(
            message(&vm("64M", "1026M")),
            "vms.conf line 6: size of [shared r] is 1026 MiB, but a shared region may be at most 1024 MiB (shared \
             regions sit 1024 MiB apart in the guest map)"
        );
        // Without shared regions, RAM may extend past 4 GiB.
        assert!(parse("[vm a]\nimage = a\nmemory = 8G\ncpus = 0\n").is_ok());
    }

    #[test]
    fn the_first_error_in_the_file_wins() {
        let text = "[vm a]\nimage = a\nbogus = 1\nmemory = 3M\n";
        assert_eq!(error(text).line, 3);
    }

    #[test]
    fn validate_against_accepts_a_matching_machine() {
        let config = parse(EXAMPLE).unwrap();
        let bundle = ["test-guest.bin", "checker.bin"];
        assert_eq!(config.validate_against(4, |name| bundle.contains(&name)), Ok(()));
    }

    #[test]
    fn validate_against_reports_missing_cpus_and_images() {
        let config = parse(EXAMPLE).unwrap();
        let everything = |_: &str| true;
        let error = config.validate_against(3, everything).unwrap_err();
        assert_eq!(error.line, 13);
        assert_eq!(
            error.to_string(),
            "vms.conf line 13: cpus in [vm checker] names CPU 3, but this machine has 3 CPUs (numbered from 0)"
        );
        let error = config.validate_against(2, everything).unwrap_err();
        assert_eq!(
            error.to_string(),
            "vms.conf line 5: cpus in [vm fresh-tags] names CPU 2, but this machine has 2 CPUs (numbered from 0)"
        );
        let error = config.validate_against(4, |name| name != "checker.bin").unwrap_err();
        assert_eq!(error.to_string(), "vms.conf line 11: image \"checker.bin\" of [vm checker] is not in the bundle");
    }

    /// Every prefix and every line-dropped variant of the example must parse or
    /// fail cleanly, never panic.
    #[test]
    fn survives_mangled_input() {
        for end in 0..=EXAMPLE.len() {
            if EXAMPLE.is_char_boundary(end) {
                let _ = parse(&EXAMPLE[..end]);
            }
        }
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        for skip in 0..lines.len() {
            let text: Vec<&str> =
                lines.iter().enumerate().filter(|&(index, _)| index != skip).map(|(_, line)| *line).collect();
            let _ = parse(&text.join("\n"));
        }
    }

    #[test]
    fn shared_region_mapping_size() {
        let text =
            "[shared race]\nsize = 4M\nmapping = 4K\n[vm a]\nimage = g.bin\nmemory = 2M\ncpus = 0\nshared = race\n";
        assert_eq!(parse(text).unwrap().shared[0].mapping_bytes, 4096);
        let bad = parse("[shared race]\nsize = 4M\nmapping = 1G\n").unwrap_err();
        assert_eq!(bad.to_string(), "vms.conf line 3: bad mapping \"1G\" in [shared race]: expected 4K or 2M");
    }

    #[test]
    fn linux_boot_settings() {
        let text = "[vm linux]\nimage = vmlinuz\ninitrd = initramfs.cpio.gz\nbootargs = console=ttyAMA0 earlycon rdinit=/init\nmemory = 512M\ncpus = 0,1\n[vm t]\nimage = t.bin\nmemory = 2M\ncpus = 0\nboot = bare\n";
        let config = parse(text).unwrap();
        let linux = &config.vms[0];
        assert_eq!(linux.boot, BootProtocol::Linux);
        assert_eq!(linux.initrd.as_deref(), Some("initramfs.cpio.gz"));
        assert_eq!(linux.bootargs, "console=ttyAMA0 earlycon rdinit=/init");
        assert_eq!(linux.lines.initrd, 3);
        assert_eq!(config.vms[1].boot, BootProtocol::Bare);
        let missing = config.validate_against(2, |name| name != "initramfs.cpio.gz").unwrap_err();
        assert_eq!(missing.line, 3);
        let bad = parse("[vm a]\nimage = a\nmemory = 2M\ncpus = 0\nboot = uefi\n").unwrap_err();
        assert_eq!(bad.to_string(), "vms.conf line 5: bad boot \"uefi\" in [vm a]: expected linux or bare");
    }
}
