//! Which backend runs a CVM: every backend that can (its platform, a free slot under its VM limit, the
//! labels asked for, healthy), the one with the largest share of its capacity free first — so load
//! spreads — and the others after it, in that order, to fall back on when one refuses or cannot be
//! reached. Each refusal says why, so that the decision can be recorded with its reason.

use std::collections::BTreeMap;
use std::fmt;

use super::event::ConfidentialPlatform;
use crate::ids::BackendId;

/// A backend as the placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: BackendId,
    pub name: String,
    /// Its kind of driver (`local`, `cocos_manager`, `byo`).
    pub provider: String,
    pub platforms: Vec<ConfidentialPlatform>,
    /// The most CVMs it runs at once.
    pub capacity: u32,
    /// How many it runs now.
    pub running: u32,
    /// E.g. `region=eu-west`.
    pub labels: BTreeMap<String, String>,
    /// Whether its last health check passed.
    pub healthy: bool,
}

/// What the CVM needs of its backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The kind of driver asked for, or `any`.
    pub provider: String,
    pub platform: ConfidentialPlatform,
    /// Labels the backend must carry, with these values.
    pub labels: BTreeMap<String, String>,
}

/// Why a backend cannot run the CVM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    Provider(String),
    Platform(ConfidentialPlatform),
    Full { running: u32, capacity: u32 },
    Down,
    Label { key: String, wanted: String },
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Provider(provider) => write!(f, "is not a {provider} backend"),
            Self::Platform(platform) => write!(f, "does not offer {platform}"),
            Self::Full { running, capacity } => write!(f, "full ({running} of {capacity} VMs)"),
            Self::Down => f.write_str("down"),
            Self::Label { key, wanted } => write!(f, "lacks {key}={wanted}"),
        }
    }
}

/// The backends to try, best first, with the reason each is there; and those left out, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub ranked: Vec<(BackendId, String)>,
    pub unfit: Vec<(BackendId, String, Unfit)>,
}

impl Placement {
    /// A one-line account of the decision for `choice` (an index into `ranked`), for the event.
    pub fn reason(&self, choice: usize) -> String {
        let mut reason = self
            .ranked
            .get(choice)
            .map_or_else(String::new, |(_, why)| why.clone());
        if choice > 0 {
            reason.push_str(&format!(
                "; {choice} better backend(s) refused or were unreachable"
            ));
        }
        for (_, name, unfit) in &self.unfit {
            reason.push_str(&format!("; {name} {unfit}"));
        }
        reason
    }
}

/// The provider that any backend is.
pub const ANY_PROVIDER: &str = "any";

fn unfit(candidate: &Candidate, needs: &Needs) -> Option<Unfit> {
    if needs.provider != ANY_PROVIDER && needs.provider != candidate.provider {
        return Some(Unfit::Provider(needs.provider.clone()));
    }
    if !candidate.platforms.contains(&needs.platform) {
        return Some(Unfit::Platform(needs.platform));
    }
    if let Some((key, wanted)) = needs
        .labels
        .iter()
        .find(|(key, wanted)| candidate.labels.get(*key) != Some(*wanted))
    {
        return Some(Unfit::Label {
            key: key.clone(),
            wanted: wanted.clone(),
        });
    }
    if !candidate.healthy {
        return Some(Unfit::Down);
    }
    if candidate.running >= candidate.capacity {
        return Some(Unfit::Full {
            running: candidate.running,
            capacity: candidate.capacity,
        });
    }
    None
}

/// Ranks `candidates` for a CVM that `needs` what it says.
pub fn place(needs: &Needs, candidates: &[Candidate]) -> Placement {
    let mut fit = Vec::new();
    let mut left_out = Vec::new();
    for candidate in candidates {
        match unfit(candidate, needs) {
            Some(why) => left_out.push((candidate.id, candidate.name.clone(), why)),
            None => fit.push(candidate),
        }
    }
    // The largest free share first (compared exactly: free_a / cap_a > free_b / cap_b), then the
    // most free slots, then the name, so that equal backends are taken in a stable order.
    fit.sort_by(|a, b| {
        let share = |c: &Candidate| (u64::from(c.capacity - c.running), u64::from(c.capacity));
        let ((fa, ca), (fb, cb)) = (share(a), share(b));
        (fb * ca)
            .cmp(&(fa * cb))
            .then_with(|| fb.cmp(&fa))
            .then_with(|| a.name.cmp(&b.name))
    });
    let ranked = fit
        .into_iter()
        .map(|c| {
            let free = c.capacity - c.running;
            (
                c.id,
                format!(
                    "{} offers {}, {free} of {} VMs free",
                    c.name, needs.platform, c.capacity
                ),
            )
        })
        .collect();
    Placement {
        ranked,
        unfit: left_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(n: u128, name: &str, capacity: u32, running: u32, healthy: bool) -> Candidate {
        Candidate {
            id: BackendId(uuid::Uuid::from_u128(n)),
            name: name.into(),
            provider: "cocos_manager".into(),
            platforms: vec![ConfidentialPlatform::SevSnp, ConfidentialPlatform::None],
            capacity,
            running,
            labels: BTreeMap::from([("region".into(), "eu".into())]),
            healthy,
        }
    }

    fn snp() -> Needs {
        Needs {
            provider: ANY_PROVIDER.into(),
            platform: ConfidentialPlatform::SevSnp,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn of_three_backends_one_full_and_one_down_the_third_is_chosen_and_the_others_say_why() {
        let backends = [
            backend(1, "a", 4, 4, true),
            backend(2, "b", 8, 1, false),
            backend(3, "c", 2, 1, true),
        ];
        let placement = place(&snp(), &backends);
        assert_eq!(placement.ranked.len(), 1);
        assert_eq!(placement.ranked[0].0, backends[2].id);
        assert_eq!(
            placement.reason(0),
            "c offers sev_snp, 1 of 2 VMs free; a full (4 of 4 VMs); b down"
        );
    }

    #[test]
    fn load_spreads_to_the_largest_free_share_and_the_rest_are_fallbacks() {
        let backends = [
            backend(1, "busy", 10, 8, true), // 20 % free
            backend(2, "small", 2, 0, true), // 100 % free
            backend(3, "half", 10, 5, true), // 50 % free
            backend(4, "half2", 4, 2, true), // 50 % free, fewer slots
        ];
        let placement = place(&snp(), &backends);
        let order: Vec<_> = placement.ranked.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            order,
            [backends[1].id, backends[2].id, backends[3].id, backends[0].id]
        );
        assert!(placement.reason(1).contains("1 better backend(s) refused"));
    }

    #[test]
    fn platform_and_labels_must_match() {
        let mut tdx_only = backend(1, "tdx", 4, 0, true);
        tdx_only.platforms = vec![ConfidentialPlatform::Tdx];
        let us = backend(2, "us", 4, 0, true);
        let needs = Needs {
            provider: ANY_PROVIDER.into(),
            platform: ConfidentialPlatform::SevSnp,
            labels: BTreeMap::from([("region".into(), "us".into())]),
        };
        let placement = place(&needs, &[tdx_only, us]);
        assert!(placement.ranked.is_empty());
        let why: Vec<String> = placement.unfit.iter().map(|(_, _, u)| u.to_string()).collect();
        assert_eq!(why, ["does not offer sev_snp", "lacks region=us"]);
    }

    #[test]
    fn a_provider_asked_for_leaves_the_other_kinds_out() {
        let mut local = backend(1, "laptop", 4, 0, true);
        local.provider = "local".into();
        let manager = backend(2, "rack", 4, 0, true);
        let needs = Needs {
            provider: "local".into(),
            platform: ConfidentialPlatform::None,
            labels: BTreeMap::new(),
        };
        let placement = place(&needs, &[local.clone(), manager]);
        assert_eq!(placement.ranked.len(), 1);
        assert_eq!(placement.ranked[0].0, local.id);
        assert_eq!(
            placement.reason(0),
            "laptop offers none, 4 of 4 VMs free; rack is not a local backend"
        );
    }
}
