//! Calc unit tests.
