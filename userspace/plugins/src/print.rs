//! print plugin (being written)
