//! OpenELB-compatible API types for oxelb.
