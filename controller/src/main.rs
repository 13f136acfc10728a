//! oxelb controller binary.
fn main() {}
