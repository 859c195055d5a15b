//! "Did you mean ...?" for unknown keys and commands.

/// The candidate nearest to `word` by edit distance, when it is close enough
/// to be a plausible typo (at most a third of the word's length, plus one).
/// Ties go to the earlier candidate, so the answer is deterministic.
#[must_use]
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = word.chars().count() / 3 + 1;
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters (insert, delete, substitute).
#[must_use]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("memroy", "memory"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(nearest("memroy", &["name", "memory"]), Some("memory"));
        assert_eq!(nearest("zzzzzz", &["name", "memory"]), None);
    }
}
