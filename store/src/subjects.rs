//! The subject scheme of the event log, spelled in this one place: `<prefix>.<aggregate type>.<aggregate id>`.

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Longest aggregate id (and aggregate type) accepted.
    pub const ID_MAX: usize = 200;

    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject of one aggregate. The id must be a single subject token of letters, digits, `-`
    /// and `_`, at most [`Subjects::ID_MAX`] bytes, so that no id can address another aggregate's
    /// subject or a wildcard, or make a subject longer than the server should carry.
    pub fn aggregate(&self, aggregate_type: &str, aggregate_id: &str) -> Result<String, StoreError> {
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= Self::ID_MAX
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !token(aggregate_id) {
            return Err(StoreError::InvalidId(aggregate_id.into()));
        }
        if !token(aggregate_type) {
            return Err(StoreError::InvalidId(aggregate_type.into()));
        }
        Ok(format!("{}.{aggregate_type}.{aggregate_id}", self.prefix))
    }

    /// Every aggregate of one type.
    pub fn of_type(&self, aggregate_type: &str) -> String {
        format!("{}.{aggregate_type}.>", self.prefix)
    }

    /// The whole log.
    pub fn all(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// `(aggregate type, aggregate id)` of an aggregate subject.
    pub fn parse<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject.strip_prefix(self.prefix.as_str())?.strip_prefix('.')?;
        let (aggregate_type, id) = rest.split_once('.')?;
        (!id.contains('.')).then_some((aggregate_type, id))
    }
}

/// Whether `subject` matches a NATS subject `filter` (`*` one token, `>` the rest).
pub(crate) fn matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for f in filter.split('.') {
        match (f, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(s)) if f == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_and_refuse_tokens_that_escape() {
        let s = Subjects::new("prism.ev");
        let subject = s.aggregate("workspace", "abc-1").unwrap();
        assert_eq!(subject, "prism.ev.workspace.abc-1");
        assert_eq!(s.parse(&subject), Some(("workspace", "abc-1")));
        let long = "x".repeat(Subjects::ID_MAX + 1);
        assert!(s.aggregate("workspace", &long[1..]).is_ok());
        for bad in ["", "a.b", "*", ">", "a b", long.as_str()] {
            assert!(s.aggregate("workspace", bad).is_err(), "{bad:?}");
        }
        assert_eq!(s.parse("other.workspace.x"), None);
    }

    #[test]
    fn filters_match_like_nats() {
        assert!(matches("prism.ev.>", "prism.ev.workspace.1"));
        assert!(matches("prism.ev.workspace.>", "prism.ev.workspace.1"));
        assert!(!matches("prism.ev.workspace.>", "prism.ev.computation.1"));
        assert!(matches("prism.ev.*.1", "prism.ev.workspace.1"));
        assert!(matches("prism.ev.workspace.1", "prism.ev.workspace.1"));
        assert!(!matches("prism.ev.workspace.1", "prism.ev.workspace.12"));
        assert!(!matches("prism.ev.>", "prism.ev"));
    }
}
