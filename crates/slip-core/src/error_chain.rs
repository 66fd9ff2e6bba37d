//! One way to show an error with its causes, for messages a person reads (logs, CLI output, deploy errors).

use std::error::Error;

/// `error` followed by each of its sources: `outer: inner: innermost`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn every_source_follows_its_error() {
        let e = Layer("reading apps/web.toml", Some(Box::new(Layer("permission denied", None))));
        assert_eq!(error_chain(&e), "reading apps/web.toml: permission denied");
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }
}
