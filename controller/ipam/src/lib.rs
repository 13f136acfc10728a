//! Pure IP allocation over Eip pools.
