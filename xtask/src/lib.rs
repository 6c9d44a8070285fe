//! The deploy kit's library.
