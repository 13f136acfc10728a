//! What the BFD test files share: the golden captures.
#![allow(clippy::unwrap_used, dead_code)]

/// The golden captures (`golden/*.hex`), as (file stem, bytes), sorted by name.
pub fn golden() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hex"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.trim();
            let bytes = (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect();
            (path.file_stem().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}
