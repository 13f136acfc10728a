//! oxelb speaker binary.
fn main() {}
