//! Tab completion of `vrouterc`: command words from the control socket's grammar
//! (`bgp::ctl::command`), protocol names as the daemon last listed them. Pure.

use bgp::ctl::command::{COMMANDS, ROUTE_OPTIONS, SHOW};

/// Words the shell itself understands.
pub const LOCAL: &[&str] = &["quit", "exit", "help"];

/// Resolves an abbreviated keyword like the server does (unique prefix).
fn expand<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    if let Some(exact) = options.iter().find(|o| **o == word) {
        return Some(exact);
    }
    let mut matching = options.iter().filter(|o| o.starts_with(word));
    match (matching.next(), matching.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// What may come next after `words` (already typed, complete words).
fn next_words(words: &[&str], names: &[String]) -> Vec<String> {
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let with_names = |mut list: Vec<String>| {
        list.extend(names.iter().cloned());
        list
    };
    let Some(first) = words.first() else {
        let mut all = owned(COMMANDS);
        all.extend(owned(LOCAL));
        return all;
    };
    let first = expand(first, COMMANDS).unwrap_or("");
    match (first, &words[1..]) {
        ("show", []) => owned(SHOW),
        ("show", [what, rest @ ..]) => match expand(what, SHOW) {
            Some("protocols") => match rest {
                [] => with_names(vec!["all".to_string()]),
                [all] if *all == "all" => with_names(Vec::new()),
                _ => Vec::new(),
            },
            Some("route") => match rest.last() {
                Some(w) if expand(w, ROUTE_OPTIONS) == Some("protocol") => with_names(Vec::new()),
                Some(w) if expand(w, ROUTE_OPTIONS) == Some("table") => {
                    owned(&["master4", "master6"])
                }
                Some(w) if expand(w, ROUTE_OPTIONS) == Some("for") => Vec::new(),
                _ => owned(ROUTE_OPTIONS),
            },
            Some("interfaces") if rest.is_empty() => owned(&["summary"]),
            _ => Vec::new(),
        },
        ("enable" | "disable" | "restart", []) => with_names(vec!["all".to_string()]),
        ("reload", []) => with_names(owned(&["in", "out", "all"])),
        ("reload", [dir]) if *dir == "in" || *dir == "out" => with_names(vec!["all".to_string()]),
        ("graceful", []) => owned(&["restart"]),
        _ => Vec::new(),
    }
}

/// Completion of `line` at byte `pos`: where the replaced word starts, and the candidates
/// (each followed by a space).
pub fn complete(line: &str, pos: usize, names: &[String]) -> (usize, Vec<String>) {
    let before = &line[..pos.min(line.len())];
    let start = before
        .char_indices()
        .rfind(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let partial = &before[start..];
    let words: Vec<&str> = before[..start].split_whitespace().collect();
    let mut candidates: Vec<String> = next_words(&words, names)
        .into_iter()
        .filter(|c| c.starts_with(partial))
        .map(|c| format!("{c} "))
        .collect();
    candidates.sort();
    candidates.dedup();
    (start, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "Mesh_10_0_0_2".into(),
            "Mesh_10_0_0_3".into(),
            "device1".into(),
        ]
    }

    #[test]
    fn completes_commands_and_names() {
        assert_eq!(complete("sh", 2, &names()), (0, vec!["show ".to_string()]));
        assert_eq!(
            complete("show pro", 8, &names()),
            (5, vec!["protocols ".to_string()])
        );
        assert_eq!(
            complete("sh pro all Mesh_10_0_0_3", 24, &names()).1,
            vec!["Mesh_10_0_0_3 "]
        );
        assert_eq!(
            complete("disable Me", 10, &names()).1,
            vec!["Mesh_10_0_0_2 ", "Mesh_10_0_0_3 "]
        );
        assert_eq!(
            complete("re", 2, &names()).1,
            vec!["reload ", "restart ", "restrict "]
        );
        assert_eq!(
            complete("show route protocol d", 21, &names()).1,
            vec!["device1 "]
        );
        assert_eq!(
            complete("show route table m", 18, &names()).1,
            vec!["master4 ", "master6 "]
        );
        assert_eq!(complete("graceful ", 9, &names()).1, vec!["restart "]);
        assert!(complete("down ", 5, &names()).1.is_empty());
        // Multi-byte whitespace and a position past the end do not break it.
        assert_eq!(complete("show\u{3000}pro", 20, &names()).0, 7);
    }
}
