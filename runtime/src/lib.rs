//! Shared runtime for the oxelb binaries.
