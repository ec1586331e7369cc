//! Tests of the case state machine.
