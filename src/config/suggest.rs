//! What a misspelled setting was meant to be: the parser lists every known key, the
//! operator needs the one nearest to what they typed.

/// For the parser's "unknown field: found `X`, expected `one of …`" (every key listed), one
/// line naming the key, the nearest known one when it is a likely typo, and where to see
/// them all.
pub(super) fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field: found `")?;
    let (found, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest
        .split('`')
        .skip(2)
        .step_by(2)
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .collect();
    let near = known
        .iter()
        .map(|k| (edit_distance(found, k), *k))
        .filter(|(d, _)| *d <= (found.len() / 3).max(2))
        .min();
    Some(match near {
        Some((_, k)) => format!(
            "unknown setting `{found}`: did you mean `{k}`? (hpfriends config show lists every setting)"
        ),
        None => format!("unknown setting `{found}` (hpfriends config show lists every setting)"),
    })
}

/// Levenshtein distance, for suggesting the setting a typo meant.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}
