//! sgsim-engine
