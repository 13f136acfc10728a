//! oxelb controller library.
