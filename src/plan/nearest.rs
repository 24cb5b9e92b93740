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

/// What people call an adapter's platform → the type the registry names it
/// (`src/adapters.rs`). Checked before edit distance: `k8s` is three edits from
/// `ecs` but means `kubernetes`.
const ALIASES: &[(&str, &[&str])] = &[
    ("k8s", &["kubernetes"]),
    ("kube", &["kubernetes"]),
    ("kubectl", &["kubernetes"]),
    ("eks", &["kubernetes"]),
    ("gke", &["kubernetes"]),
    ("gcp", &["gcp_secret_manager", "cloud_run"]),
    ("google", &["gcp_secret_manager", "cloud_run"]),
    ("secret_manager", &["gcp_secret_manager"]),
    ("cloudrun", &["cloud_run"]),
    ("aws", &["aws_secrets_manager", "ecs"]),
    ("secretsmanager", &["aws_secrets_manager"]),
    ("secrets_manager", &["aws_secrets_manager"]),
    ("asm", &["aws_secrets_manager"]),
    ("fargate", &["ecs"]),
    ("flyio", &["fly"]),
    ("fly.io", &["fly"]),
    ("ssh", &["vps_file", "systemd"]),
    ("vps", &["vps_file", "systemd"]),
    ("systemctl", &["systemd"]),
    ("local", &["file", "command"]),
    ("shell", &["command"]),
    ("exec", &["command"]),
    ("script", &["command"]),
];

/// The adapter type `word` most likely means, among `types` (one kind's, store or
/// restarter): a known alias first, then the nearest by edit distance.
pub fn suggest_type<'a>(word: &str, types: &[&'a str]) -> Option<&'a str> {
    let folded = word.trim().to_ascii_lowercase().replace('-', "_");
    let by_alias = ALIASES
        .iter()
        .filter(|(alias, _)| *alias == folded)
        .flat_map(|(_, targets)| targets.iter())
        .find_map(|t| types.iter().copied().find(|k| k == t));
    by_alias.or_else(|| nearest(&folded, types.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::{nearest, suggest_type};

    const STORES: &[&str] = &[
        "file",
        "aws_secrets_manager",
        "vps_file",
        "gcp_secret_manager",
        "vercel",
    ];
    const RESTARTERS: &[&str] = &[
        "command",
        "ecs",
        "systemd",
        "cloud_run",
        "kubernetes",
        "vercel",
        "fly",
    ];

    #[test]
    fn aliases_name_the_adapter_before_edit_distance() {
        // By distance alone, k8s is `ecs` (two edits).
        assert_eq!(nearest("k8s", RESTARTERS.iter().copied()), Some("ecs"));
        assert_eq!(suggest_type("k8s", RESTARTERS), Some("kubernetes"));
        assert_eq!(suggest_type("K8s", RESTARTERS), Some("kubernetes"));
        assert_eq!(suggest_type("gcp", RESTARTERS), Some("cloud_run"));
        assert_eq!(suggest_type("gcp", STORES), Some("gcp_secret_manager"));
        assert_eq!(suggest_type("aws", STORES), Some("aws_secrets_manager"));
        assert_eq!(suggest_type("aws", RESTARTERS), Some("ecs"));
        assert_eq!(suggest_type("fly.io", RESTARTERS), Some("fly"));
        assert_eq!(suggest_type("ssh", RESTARTERS), Some("systemd"));
        assert_eq!(suggest_type("ssh", STORES), Some("vps_file"));
        // An alias whose adapter is of the other kind is no answer; distance is.
        assert_eq!(suggest_type("k8s", STORES), None);
        assert_eq!(
            suggest_type("aws_secret_manager", STORES),
            Some("aws_secrets_manager")
        );
        assert_eq!(suggest_type("nomad", RESTARTERS), None);
    }

    #[test]
    fn every_alias_names_a_known_type() {
        let known: Vec<&str> = crate::adapters::known().map(|(t, _, _)| t).collect();
        for (alias, targets) in super::ALIASES {
            for t in *targets {
                assert!(known.contains(t), "{alias} → {t}: no such type");
            }
        }
    }

    #[test]
    fn suggests_typos_only() {
        let keys = ["secret_id", "region", "profile"];
        assert_eq!(nearest("secretid", keys), Some("secret_id"));
        assert_eq!(nearest("regoin", keys), Some("region"));
        assert_eq!(nearest("totally_else", keys), None);
    }
}
