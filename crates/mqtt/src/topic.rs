//! Topic names and topic filters (MQTT 3.1.1 §4.7): validation and matching.

/// Why a topic name or filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Names and filters must be at least one character long (§4.7.3).
    #[error("the topic is empty")]
    Empty,
    /// Longer than the 65,535 bytes a length prefix can carry.
    #[error("the topic is {0} bytes long (at most 65535)")]
    TooLong(usize),
    /// U+0000 is forbidden in MQTT strings (§1.5.3).
    #[error("the topic contains a NUL character")]
    Nul,
    /// A topic *name* cannot contain `+` or `#` (§3.3.2.1).
    #[error("a topic name cannot contain the wildcards '+' or '#'")]
    WildcardInName,
    /// `+` must fill a whole level and `#` must be the whole last level (§4.7.1).
    #[error("a wildcard must fill a whole level, and '#' must be last")]
    MisplacedWildcard,
}

fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err(TopicError::TooLong(topic.len()));
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a topic name, as used in PUBLISH.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    validate_common(name)?;
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter, as used in SUBSCRIBE and UNSUBSCRIBE.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        let ok = match level {
            "+" => true,
            "#" => is_last,
            _ => !level.contains(['+', '#']),
        };
        if !ok {
            return Err(TopicError::MisplacedWildcard);
        }
    }
    Ok(())
}

/// Whether the topic `name` matches the (valid) `filter`.
///
/// Filters that start with a wildcard do not match names that start with `$` (§4.7.2), so
/// a fleet-wide `#` never sees broker-internal `$SYS` or AWS `$aws` topics.
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut names = name.split('/');
    for level in filter.split('/') {
        match (level, names.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (level, Some(n)) if level == n => {}
            _ => return false,
        }
    }
    names.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated_by_level() {
        for ok in [
            "#",
            "+",
            "a/+/c",
            "a/#",
            "+/+",
            "/",
            "a//b",
            "sport/tennis/#",
        ] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["a#", "a/#/b", "a+", "+a/b", "#/a"] {
            assert_eq!(
                validate_filter(bad),
                Err(TopicError::MisplacedWildcard),
                "{bad}"
            );
        }
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a\0"), Err(TopicError::Nul));
        assert_eq!(
            validate_name(&"x".repeat(65_536)),
            Err(TopicError::TooLong(65_536))
        );
    }

    #[test]
    fn matching_follows_the_spec_examples() {
        // §4.7.1.2 and §4.7.1.3 examples.
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches(
            "dt/monitoring/+/+/telemetry",
            "dt/monitoring/1/d-0001/telemetry"
        ));
        assert!(!matches(
            "dt/monitoring/+/+/telemetry",
            "dt/monitoring/alarms"
        ));
        // §4.7.2: wildcards at the start never match $-topics.
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }
}
