//! A hash of a value's JSON text, for telling whether a write or an object changed.

/// The hash of a value as its JSON text, computed as it is serialized: a large value (an Eip
/// status patch at tens of thousands of IPs) is megabytes of text that need not exist at once.
pub(crate) fn json_hash(value: &impl serde::Serialize) -> u64 {
    use std::hash::Hasher;
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(std::collections::hash_map::DefaultHasher::new());
    // Serializing into a writer that never fails cannot fail; were it to, the hash of what was
    // written only makes a comparison see a difference (a write made again, a whole pass), never
    // hide one.
    let _ = serde_json::to_writer(&mut writer, value);
    writer.0.finish()
}
