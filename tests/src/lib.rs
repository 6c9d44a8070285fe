//! Shared support for the kit's tests.
