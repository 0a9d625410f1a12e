//! apiserver (to be written)
