//! Issue 4 tests (money): to be written.
