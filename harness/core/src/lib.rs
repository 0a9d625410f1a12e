//! sgsim-core
