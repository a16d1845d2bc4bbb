//! Drivers, one module per kernel interface.
