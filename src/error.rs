//! One rule for every error type: its message names its own layer only
//! (`cannot read config FILE`), and the cause follows through
//! [`std::error::Error::source`]. The binary prints the chain with anyhow's
//! `{:#}`; [`Chain`] prints it the same way where there is no anyhow (logs,
//! reports) and in the binary, where it also prints a cause only once when
//! another crate's error already puts it in its own message (kube's
//! `HyperError: {0}` with the same error as its source).

use std::error::Error;
use std::fmt;

/// An error and its causes, `outer: inner: root`, as anyhow's `{:#}` prints
/// them, but a cause whose text the layer above already printed is skipped.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut above = self.0.to_string();
        f.write_str(&above)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            let text = e.to_string();
            if !above.contains(&text) {
                write!(f, ": {text}")?;
            }
            above = text;
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

    /// Another crate's error that prints its source itself.
    #[derive(Debug, thiserror::Error)]
    #[error("HyperError: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = Repeats(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(Chain(&e).to_string(), "HyperError: refused");
        let e = anyhow::Error::new(e).context("listing namespaces");
        assert_eq!(Chain(&*e).to_string(), "listing namespaces: HyperError: refused");
    }
}
