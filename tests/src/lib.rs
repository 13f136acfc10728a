//! Workspace-level integration test support for oxelb.
