//! sgsim-cluster
