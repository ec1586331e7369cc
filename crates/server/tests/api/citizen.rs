//! Issue 4 tests (citizen): to be written.
