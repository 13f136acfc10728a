//! Writes config/crd/*.yaml.
fn main() {}
