//! Test-only helpers: loading the real DTB fixtures and encoding small device
//! trees by hand, so tests need neither `dtc` nor network access.

use std::string::String;
use std::vec::Vec;

/// Reads `target/test-fixtures/<name>`, failing loudly when it is missing so
/// a test can never pass by skipping its fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../target/test-fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(_) => panic!("missing DTB fixture {path}: run `cargo xtask test`, which fetches and generates them"),
    }
}

/// Encodes a version-17 flattened device tree the way `dtc` lays it out:
/// header, memory reservation block, structure block, strings block.
#[derive(Default)]
pub struct FdtBuilder {
    reservations: Vec<(u64, u64)>,
    structure: Vec<u8>,
    strings: Vec<u8>,
    string_offsets: Vec<(String, u32)>,
}

impl FdtBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn reserve(&mut self, base: u64, size: u64) -> &mut Self {
        self.reservations.push((base, size));
        self
    }

    pub fn begin_node(&mut self, name: &str) -> &mut Self {
        self.token(1);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self
    }

    pub fn end_node(&mut self) -> &mut Self {
        self.token(2);
        self
    }

    pub fn property(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let name_offset = self.string_offset(name);
        self.token(3);
        self.structure.extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.structure.extend_from_slice(&name_offset.to_be_bytes());
        self.structure.extend_from_slice(value);
        self.pad();
        self
    }

    pub fn property_u32s(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let value: Vec<u8> = cells.iter().flat_map(|cell| cell.to_be_bytes()).collect();
        self.property(name, &value)
    }

    pub fn property_strings(&mut self, name: &str, strings: &[&str]) -> &mut Self {
        let mut value = Vec::new();
        for string in strings {
            value.extend_from_slice(string.as_bytes());
            value.push(0);
        }
        self.property(name, &value)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.token(9);
        let reservations_offset = 40usize;
        let structure_offset = reservations_offset + 16 * (self.reservations.len() + 1);
        let strings_offset = structure_offset + self.structure.len();
        let total_size = strings_offset + self.strings.len();

        let header = [
            0xd00d_feed,
            total_size as u32,
            structure_offset as u32,
            strings_offset as u32,
            reservations_offset as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ];
        let mut blob: Vec<u8> = header.iter().flat_map(|word| word.to_be_bytes()).collect();
        for &(base, size) in self.reservations.iter().chain([(0, 0)].iter()) {
            blob.extend_from_slice(&base.to_be_bytes());
            blob.extend_from_slice(&size.to_be_bytes());
        }
        blob.extend_from_slice(&self.structure);
        blob.extend_from_slice(&self.strings);
        blob
    }

    fn token(&mut self, token: u32) {
        self.structure.extend_from_slice(&token.to_be_bytes());
    }

    fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }

    fn string_offset(&mut self, name: &str) -> u32 {
        if let Some((_, offset)) = self.string_offsets.iter().find(|(known, _)| known == name) {
            return *offset;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.string_offsets.push((String::from(name), offset));
        offset
    }
}

/// Replaces every occurrence of `from` in `blob` with `to` (same length),
/// returning how many were replaced. Used to knock nodes out of real fixtures
/// by breaking their `compatible` strings.
pub fn replace_bytes(blob: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len(), "replacement must keep the blob layout");
    let mut replaced = 0;
    let mut index = 0;
    while index + from.len() <= blob.len() {
        if &blob[index..index + from.len()] == from {
            blob[index..index + from.len()].copy_from_slice(to);
            replaced += 1;
            index += from.len();
        } else {
            index += 1;
        }
    }
    replaced
}
