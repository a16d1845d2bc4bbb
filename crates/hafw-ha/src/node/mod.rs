//! The HA state machine (being written).
