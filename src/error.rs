//! One rule for every error type: its message names its own layer only
//! (`cannot read config FILE`), and the cause follows through
//! [`std::error::Error::source`]. The binary prints the chain with anyhow's
//! `{:#}`; [`Chain`] prints it the same way where there is no anyhow (logs,
//! reports).

use std::error::Error;
use std::fmt;

/// An error and its causes, `outer: inner: root`, as anyhow's `{:#}` prints them.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config x.yaml")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_layer_is_printed_once() {
        let e = Outer(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        assert_eq!(Chain(&e).to_string(), "cannot read config x.yaml: gone");
    }
}
