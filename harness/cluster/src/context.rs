//! context (to be written)
