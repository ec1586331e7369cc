//! citygrid-core: the domain of digital urban management (数字化城市管理), pure and synchronous.
//!
//! Nothing here does I/O or reads the clock: `now` is always a parameter, so deadlines,
//! calendars and the case state machine are testable to the minute. Storage and HTTP are thin
//! shells around these types.

pub mod assessment;
pub mod calendar;
pub mod case;
pub mod catalogue;
pub mod citizen;
pub mod codes;
pub mod component;
pub mod evaluation;
pub mod org;
pub mod reward;
pub mod settlement;

pub use jiff::Timestamp;
