//! What the CPU supports of the Memory Tagging Extension, decoded from the ID
//! registers the arch layer reads (`ID_AA64PFR1_EL1`, `DCZID_EL0`, `GMID_EL1`).

/// The MTE feature level, `ID_AA64PFR1_EL1.MTE` (bits 11:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MteLevel {
    /// No MTE.
    None,
    /// FEAT_MTE: only the instructions; no allocation tags in memory.
    InstructionsOnly,
    /// FEAT_MTE2: full MTE with tag storage.
    Mte2,
    /// FEAT_MTE3: MTE2 plus asymmetric tag-check faults.
    Mte3,
}

impl MteLevel {
    /// Whether allocation tags exist in memory (what guests and the sanitiser need).
    pub fn has_tag_storage(self) -> bool {
        self >= Self::Mte2
    }
}

/// MTE and cache-zeroing capabilities of this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MteInfo {
    pub level: MteLevel,
    /// Bytes zeroed by one `DC ZVA` / `DC GZVA` (`4 << DCZID_EL0.BS`).
    pub zero_block_bytes: u64,
    /// `DCZID_EL0.DZP`: `DC ZVA`/`DC GZVA` are prohibited and the `STZ2G` fallback is needed.
    pub zero_prohibited: bool,
    /// Bytes of tags covered by one `STGM`/`LDGM` (`4 << GMID_EL1.BS`), when MTE2 exists.
    pub tag_block_bytes: Option<u64>,
}

impl MteInfo {
    /// Decodes the raw register values. `gmid_el1` must be `None` unless the
    /// register exists (reading it without MTE2 is UNDEFINED).
    pub fn from_registers(id_aa64pfr1_el1: u64, dczid_el0: u64, gmid_el1: Option<u64>) -> Self {
        let level = match (id_aa64pfr1_el1 >> 8) & 0xF {
            0 => MteLevel::None,
            1 => MteLevel::InstructionsOnly,
            2 => MteLevel::Mte2,
            _ => MteLevel::Mte3,
        };
        let tag_block_bytes = match level.has_tag_storage() {
            true => gmid_el1.map(|gmid| 4 << (gmid & 0xF)),
            false => None,
        };
        Self {
            level,
            zero_block_bytes: 4 << (dczid_el0 & 0xF),
            zero_prohibited: dczid_el0 & (1 << 4) != 0,
            tag_block_bytes,
        }
    }
}

impl core::fmt::Display for MteInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.level {
            MteLevel::None => write!(f, "unavailable")?,
            MteLevel::InstructionsOnly => write!(f, "unavailable (FEAT_MTE instructions only, no tag storage)")?,
            MteLevel::Mte2 => write!(f, "MTE2")?,
            MteLevel::Mte3 => write!(f, "MTE3 (asymmetric faults)")?,
        }
        if let Some(bytes) = self.tag_block_bytes {
            write!(f, ", STGM block {bytes} bytes")?;
        }
        write!(f, ", DC ZVA/GZVA block {} bytes", self.zero_block_bytes)?;
        if self.zero_prohibited {
            write!(f, " (prohibited: DCZID_EL0.DZP set)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values read on QEMU 10.0.2 `-cpu max` with `mte=on`: ID_AA64PFR1_EL1.MTE = 3,
    /// DCZID_EL0 = 4, GMID_EL1.BS = 6.
    #[test]
    fn qemu_max_with_mte() {
        let info = MteInfo::from_registers(0x0000_0000_0000_0321, 4, Some(6));
        assert_eq!(info.level, MteLevel::Mte3);
        assert_eq!(info.zero_block_bytes, 64);
        assert_eq!(info.tag_block_bytes, Some(256));
        assert!(!info.zero_prohibited);
        assert_eq!(info.to_string(), "MTE3 (asymmetric faults), STGM block 256 bytes, DC ZVA/GZVA block 64 bytes");
    }

    /// With `mte=off` QEMU hides MTE (the field reads 0, or 1 on some CPU models).
    #[test]
    fn no_tag_storage() {
        let none = MteInfo::from_registers(0x21, 0x14, None);
        assert_eq!(none.level, MteLevel::None);
        assert!(none.zero_prohibited);
        assert_eq!(none.tag_block_bytes, None);
        let insns = MteInfo::from_registers(0x100, 4, Some(6));
        assert!(!insns.level.has_tag_storage());
        assert_eq!(insns.tag_block_bytes, None);
    }
}
