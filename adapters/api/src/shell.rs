//! Commands printed for an operator to run by hand (the way to close an open
//! window, to remove a lock): one quoting rule for every adapter, so what is
//! printed pastes into a POSIX shell as it reads.

/// Quotes for a POSIX shell only when needed, so a printed command stays readable.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_what_a_shell_would_split_or_expand() {
        assert_eq!(
            shell_quote("/etc/vsync/passphrase"),
            "/etc/vsync/passphrase"
        );
        assert_eq!(shell_quote("prod/vsync@x"), "prod/vsync@x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
