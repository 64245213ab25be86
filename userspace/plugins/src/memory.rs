//! memory plugin (being written)
