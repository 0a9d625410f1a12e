//! images (to be written)
