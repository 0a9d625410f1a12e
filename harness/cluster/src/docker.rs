//! docker (to be written)
