//! Slots as LIST_SLOTS reports them, and the choice of which one `load --slot-id '*'` uses.

use super::meta::{unescape_listed, SlotMeta};

/// `.bak.` dirs live this long; slots closer than this to expiry are not offered to load/store.
pub const BAK_MAX_AGE_SEC: u64 = 60;

/// One committed slot in the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot id (directory name).
    pub id: String,
    /// Seconds since the slot directory's ctime.
    pub age_sec: u64,
    /// The slot's `.ci-storage.meta`.
    pub meta: SlotMeta,
}

/// Replaces every character outside `[A-Za-z0-9_-]` with `_`; `*` is kept.
pub fn normalize_slot_id(id: &str) -> String {
    if id == "*" {
        return id.to_owned();
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses LIST_SLOTS output (newest first), dropping slots that maintenance may remove soon:
/// those not younger than `max_age_sec - 60` (the margin is skipped for max ages ≤ 120 s).
pub fn parse_list_slots(output: &str, max_age_sec: u64) -> Vec<SlotInfo> {
    let margin = if max_age_sec > 2 * BAK_MAX_AGE_SEC {
        BAK_MAX_AGE_SEC
    } else {
        0
    };
    output
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let id = parts.next().filter(|id| !id.is_empty())?;
            let age_sec = parts.next()?.parse::<u64>().ok()?;
            let meta = SlotMeta::deserialize(&unescape_listed(parts.next().unwrap_or("")));
            Some(SlotInfo {
                id: id.to_owned(),
                age_sec,
                meta,
            })
        })
        .filter(|slot| slot.age_sec + margin <= max_age_sec)
        .collect()
}

/// A decision with the lines explaining it (printed by the caller).
#[derive(Debug)]
pub struct Choice {
    /// The chosen slot id.
    pub id: String,
    /// Human-readable reasoning, one line each.
    pub log: Vec<String>,
}

/// Best full slot for `*`: the highest hint weight (one bit per given hint, leftmost is the
/// most significant), ties to the youngest; no hints or no match → the newest slot.
/// `slots` must be non-empty and newest first.
pub fn best_full_slot(prefix: &str, slots: &[SlotInfo], hints: &[String]) -> Option<Choice> {
    let newest = slots.first()?;
    if hints.is_empty() {
        return Some(Choice {
            id: newest.id.clone(),
            log: vec![format!(
                "{prefix} loading the most recent full (non-layer) slot-id=\"{}\"",
                newest.id
            )],
        });
    }
    let mut log = vec![format!("{prefix} prioritizing slots matching hints...")];
    let mut best: Option<(Vec<bool>, u64, &str)> = None;
    for slot in slots {
        let bits: Vec<bool> = hints.iter().map(|h| slot.meta.hints.contains(h)).collect();
        if !bits.iter().any(|b| *b) {
            continue;
        }
        let weight: String = bits.iter().map(|b| if *b { '1' } else { '0' }).collect();
        let matched: Vec<&str> = hints
            .iter()
            .zip(&bits)
            .filter(|(_, b)| **b)
            .map(|(h, _)| h.as_str())
            .collect();
        log.push(format!(
            "Checking slot-id=\"{}\" from the storage... weight: {weight}, matched hints: {}, age: {} sec",
            slot.id,
            matched.join(", "),
            slot.age_sec
        ));
        // Vec<bool> compares lexicographically: leftmost hint is the most significant bit.
        // Younger wins a tie, then the larger id (as the original's reverse sort does).
        let better = match &best {
            None => true,
            Some((b_bits, b_age, b_id)) => {
                (&bits, std::cmp::Reverse(slot.age_sec), slot.id.as_str())
                    > (b_bits, std::cmp::Reverse(*b_age), *b_id)
            }
        };
        if better {
            best = Some((bits, slot.age_sec, slot.id.as_str()));
        }
    }
    match best {
        Some((_, _, id)) => {
            log.push(format!(
                "Winner: slot-id=\"{id}\"; loading it, since it has the highest weight"
            ));
            Some(Choice {
                id: id.to_owned(),
                log,
            })
        }
        None => {
            log.push(format!(
                "No slots matching hints, so loading the most recent full (non-layer) slot-id=\"{}\"",
                newest.id
            ));
            Some(Choice {
                id: newest.id.clone(),
                log,
            })
        }
    }
}

/// Best layer slot for `*`: the first id of the local full snapshot history that exists in
/// the layer storage, else the newest layer slot. `slots` must be newest first.
pub fn best_layer_slot(prefix: &str, slots: &[SlotInfo], history: &[String]) -> Option<Choice> {
    let newest = slots.first()?;
    if history.is_empty() {
        return Some(Choice {
            id: newest.id.clone(),
            log: vec![format!(
                "{prefix} no past loading history, so using just the most recent layer slot-id=\"{}\"",
                newest.id
            )],
        });
    }
    let mut log = vec![format!(
        "{prefix} prioritizing layer slots mentioned in the past full snapshot loading history..."
    )];
    for id in history {
        if slots.iter().any(|s| &s.id == id) {
            log.push(format!(
                "Checking slot-id=\"{id}\" from history... found in the layer storage, using it"
            ));
            return Some(Choice {
                id: id.clone(),
                log,
            });
        }
        log.push(format!(
            "Checking slot-id=\"{id}\" from history... not found in the layer storage"
        ));
    }
    log.push(format!(
        "No slots from past full snapshot loading history were found in the layer storage, so using just the most recent slot-id=\"{}\"",
        newest.id
    ));
    Some(Choice {
        id: newest.id.clone(),
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: &str, age_sec: u64, hints: &[&str]) -> SlotInfo {
        SlotInfo {
            id: id.into(),
            age_sec,
            meta: SlotMeta {
                full_snapshot_history: vec![],
                hints: hints.iter().map(|h| h.to_string()).collect(),
            },
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalizes_ids() {
        assert_eq!(normalize_slot_id("a/b c.d-e_F9"), "a_b_c_d-e_F9");
        assert_eq!(normalize_slot_id("*"), "*");
        assert_eq!(normalize_slot_id("ü"), "_");
    }

    #[test]
    fn parses_listing_and_drops_expiring() {
        let out = "new 5 hints=a\\nfull_snapshot_history=x y\\n\nold 3590 \nbad line\n";
        let slots = parse_list_slots(out, 3600);
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].id, "new");
        assert_eq!(slots[0].meta.hints, vec!["a"]);
        assert_eq!(slots[0].meta.full_snapshot_history, vec!["x", "y"]);
        assert_eq!(parse_list_slots(out, 100_000).len(), 2);
    }

    #[test]
    fn leftmost_hint_weighs_most() {
        let slots = vec![
            slot("young", 1, &["b"]),
            slot("mid", 2, &["a"]),
            slot("old", 3, &["a", "b"]),
        ];
        let c = best_full_slot("p", &slots, &strings(&["a", "b"])).unwrap();
        assert_eq!(c.id, "old");
        let c = best_full_slot("p", &slots[..2], &strings(&["a", "b"])).unwrap();
        assert_eq!(c.id, "mid");
        let c = best_full_slot("p", &slots, &strings(&["zzz"])).unwrap();
        assert_eq!(c.id, "young");
        let c = best_full_slot("p", &slots, &[]).unwrap();
        assert_eq!(c.id, "young");
    }

    #[test]
    fn tie_goes_to_youngest() {
        let slots = vec![slot("s2", 1, &["a"]), slot("s1", 5, &["a"])];
        assert_eq!(
            best_full_slot("p", &slots, &strings(&["a"])).unwrap().id,
            "s2"
        );
    }

    #[test]
    fn layer_follows_history() {
        let slots = vec![slot("l3", 1, &[]), slot("l1", 5, &[])];
        let c = best_layer_slot("p", &slots, &strings(&["l2", "l1"])).unwrap();
        assert_eq!(c.id, "l1");
        let c = best_layer_slot("p", &slots, &strings(&["zz"])).unwrap();
        assert_eq!(c.id, "l3");
        assert!(best_layer_slot("p", &[], &[]).is_none());
    }
}
