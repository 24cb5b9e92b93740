//! "Did you mean": the nearest known name to a misspelt one, for plan keys and
//! adapter types. Edit distance from `strsim`; the threshold is ours.

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn suggests_typos_only() {
        let keys = ["secret_id", "region", "profile"];
        assert_eq!(nearest("secretid", keys), Some("secret_id"));
        assert_eq!(nearest("regoin", keys), Some("region"));
        assert_eq!(nearest("totally_else", keys), None);
    }
}
