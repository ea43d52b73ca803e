//! "Did you mean" hints.

/// The candidate closest to `typo`, if it is close enough to be what the
/// user meant.
pub(crate) fn closest<'a>(
    typo: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let typo_lower = typo.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&typo_lower, c), c))
        .filter(|(d, c)| {
            let limit = (c.len().max(typo.len()) / 3).max(1);
            *d <= limit
                || (c.len() >= 4 && (typo_lower.starts_with(c) || c.starts_with(&typo_lower)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: Levenshtein plus adjacent
/// transpositions, so `agnet` is one edit from `agent`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::KEYS;

    #[test]
    fn typos_find_the_option() {
        assert_eq!(closest("agnet", KEYS), Some("agent"));
        assert_eq!(closest("tennant", KEYS), Some("tenant"));
        assert_eq!(closest("conversaton", KEYS), Some("conversation"));
        assert_eq!(closest("validate", KEYS), Some("validate_tenant"));
        assert_eq!(closest("agent_id", KEYS), Some("agent"));
        assert_eq!(closest("Tenant", KEYS), Some("tenant"));
    }

    #[test]
    fn unrelated_words_get_no_hint() {
        assert_eq!(closest("timeout", KEYS), None);
        assert_eq!(closest("x", KEYS), None);
    }
}
