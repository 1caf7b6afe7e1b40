//! Pure policy on top of the engine: what admission will do to a workload
//! (assess), the words users read (messages), what a namespace changes
//! (namespace) and `scan`'s per-namespace report (scan). No I/O and no wire
//! format: the admission layer and the CLI build on this.

pub mod assess;
pub mod messages;
pub mod namespace;
pub mod scan;

use crate::config::Mode;
use serde::Serialize;
use std::fmt;

/// The mode in force for a namespace's pods: the configuration's [`Mode`],
/// or `off` where the namespace switched secure-defaults off (or is excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeInForce {
    Enforce,
    Audit,
    Off,
}

impl ModeInForce {
    /// The mode named `name` (a namespace's `secure-defaults.io/mode`).
    pub fn from_name(name: &str) -> Option<ModeInForce> {
        [ModeInForce::Enforce, ModeInForce::Audit, ModeInForce::Off]
            .into_iter()
            .find(|m| m.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModeInForce::Enforce => "enforce",
            ModeInForce::Audit => "audit",
            ModeInForce::Off => "off",
        }
    }
}

impl From<Mode> for ModeInForce {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Enforce => ModeInForce::Enforce,
            Mode::Audit => ModeInForce::Audit,
        }
    }
}

impl fmt::Display for ModeInForce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the name, as reports and tests spell it.
impl PartialEq<&str> for ModeInForce {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
