//! Small-count suppression in statistics about persons.
//!
//! A count about persons that is above zero and below the threshold (default 5) is hidden
//! (`null` with `"suppressed": true` in JSON, `<5` in CSV). When exactly one cell of a published
//! total is hidden, it could be computed back from the total and the others, so the smallest other
//! non-zero cell is hidden as well.

/// Which cells of one published total to hide. Each cell is (count, about persons): primary
/// suppression hides person-level counts in `1..threshold`; then, if exactly one cell is hidden,
/// the smallest other non-zero cell (of either kind) is hidden too.
pub fn suppress(cells: &[(u64, bool)], threshold: u64) -> Vec<bool> {
    let mut hidden: Vec<bool> = cells.iter().map(|(v, person)| *person && *v > 0 && *v < threshold).collect();
    if hidden.iter().filter(|h| **h).count() == 1 {
        let smallest = cells
            .iter()
            .enumerate()
            .filter(|(i, (v, _))| !hidden[*i] && *v > 0)
            .min_by_key(|(_, (v, _))| *v)
            .map(|(i, _)| i);
        if let Some(i) = smallest {
            hidden[i] = true;
        }
    }
    hidden
}

/// Whether events of `event_type` are about a person or a care case (everything but NPÖ roles,
/// SDK addresses and the hub's own events).
pub fn is_person_level(event_type: &str) -> bool {
    !matches!(
        event_type,
        "se.sgd.npo.role.activated"
            | "se.sgd.npo.role.deactivated"
            | "se.sgd.sdk.address.published"
            | "se.sgd.hub.adapter.heartbeat"
    )
}

/// Whether a share of cases about persons must be hidden: either it or its complement is small.
pub fn hide_share(numerator: u64, denominator: u64, threshold: u64) -> bool {
    let small = |n: u64| n > 0 && n < threshold;
    small(numerator) || small(denominator.saturating_sub(numerator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_and_the_cell_that_would_reveal_them_are_hidden() {
        let p = |v: u64| (v, true);
        assert_eq!(suppress(&[p(3), p(10), p(7), p(0)], 5), vec![true, false, true, false]);
        assert_eq!(suppress(&[p(3), p(4), p(10)], 5), vec![true, true, false]);
        assert_eq!(suppress(&[p(5), p(10)], 5), vec![false, false]);
        // a count not about persons is never hidden for itself, but can be the revealing cell
        assert_eq!(suppress(&[(2, false), (9, true)], 5), vec![false, false]);
        assert_eq!(suppress(&[p(2), (9, false)], 5), vec![true, true]);
        assert_eq!(suppress(&[p(2), p(0)], 5), vec![true, false]);
        assert_eq!(suppress(&[p(2)], 0), vec![false]);
    }

    #[test]
    fn shares_are_hidden_when_either_side_is_small() {
        assert!(hide_share(1, 10, 5));
        assert!(hide_share(9, 10, 5));
        assert!(!hide_share(5, 10, 5));
        assert!(!hide_share(0, 10, 5));
        assert!(!hide_share(10, 10, 5));
    }
}
