//! `unplug`: an async runtime whose worker threads can be parked, re-pinned
//! and brought back while it runs. The executor lands in a later step; for
//! now this re-exports the parkable worker it is built on.

pub use unplug_worker as worker;
