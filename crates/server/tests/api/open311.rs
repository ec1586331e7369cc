//! Issue 4 tests (open311): to be written.
