//! oxelb speaker library.
