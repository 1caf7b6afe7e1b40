//! Pure policy on top of the engine: what admission will do to a workload
//! (assess), the words users read (messages), what a namespace changes
//! (namespace) and `scan`'s per-namespace report (scan). No I/O and no wire
//! format: the admission layer and the CLI build on this.

pub mod assess;
pub mod messages;
pub mod namespace;
pub mod scan;
