//! The boot-bundle (cpio newc) reader on arbitrary bytes: parse, then every
//! lookup and the file iterator.

#![no_main]

use hypervisor::bundle::Bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bundle = match Bundle::parse(data) {
        Ok(bundle) => bundle,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let base = data.as_ptr() as usize;
    let mut count = 0;
    for (name, contents) in bundle.files() {
        count += 1;
        assert!(!name.starts_with("./"));
        // Borrowed in place from the archive.
        let start = contents.as_ptr() as usize;
        assert!(contents.is_empty() || (start >= base && start + contents.len() <= base + data.len()));
        let found = bundle.file(name).expect("an iterated name is found");
        // The first entry of that name wins.
        let _ = found;
        let _ = bundle.file(&format!("./{name}"));
    }
    let _ = bundle.file("vms.conf");
    let _ = bundle.file("");
    assert!(count <= data.len() / 110);
});
