//! node (to be written)
