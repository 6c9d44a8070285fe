//! A recipe's header: the leading comment block of its `bootstrap.sh`, read inertly
//! (nothing in it is executed). Directives (SPEC §13.1, §18):
//! `# wb-passthrough: NAME …` — its own CLI's credentials, taken from the caller's env;
//! `# wb-artifacts: NAME …` — what the kit renders for it (`fly-toml`);
//! `# wb-cli: NAME|ALT …` — the provider CLIs it runs (checked before anything else);
//! `# wb-properties: NAME[:type] …`, `# wb-requires: KEY …`, `# wb-supports: KEY …` —
//! its [`Contract`] with the deployments that use it;
//! `# wb-readonly: CLI SUB…|…` — read-only command prefixes (for `recipe check`).
//! A directive may repeat (its words accumulate); an unknown `wb-*` directive is a
//! warning naming it.

use crate::core::contract::{self, Contract, PropType};
use crate::core::names;
use crate::core::render::Artifact;

/// The directives of contract v2 (SPEC §18).
const KNOWN: &[&str] = &[
    "wb-passthrough",
    "wb-properties",
    "wb-requires",
    "wb-supports",
    "wb-artifacts",
    "wb-readonly",
    "wb-cli",
];

/// What a recipe's header declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub passthrough: Vec<String>,
    pub artifacts: Vec<Artifact>,
    /// `# wb-cli:` — each word a CLI the recipe needs; `a|b` means either will do.
    pub cli: Vec<Vec<String>>,
    pub contract: Contract,
    /// `# wb-readonly:` — command prefixes (`fly status`) that change nothing.
    pub readonly: Vec<Vec<String>>,
    pub warnings: Vec<String>,
    /// The line of each directive seen, for messages (`bootstrap.sh:3`).
    pub lines: Vec<(String, usize)>,
}

/// Reads the header of `provider`'s recipe. A passthrough name that is not a variable
/// name, that the kit sets itself or that changes how bash runs is refused; a
/// provider-namespaced `WB_<PROVIDER>_*` name (a setting of that provider's own) is
/// allowed.
pub fn scan(script: &str, provider: &str) -> Result<Header, String> {
    let mut header = Header::default();
    for (index, line) in script.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix('#') else {
            break;
        };
        let Some((directive, words)) = comment.trim_start().split_once(':') else {
            continue;
        };
        let directive = directive.trim();
        let at = index + 1;
        if directive.starts_with("wb-") {
            header.lines.push((directive.to_string(), at));
        }
        let fail = |why: String| format!("line {at}: {why}");
        match directive {
            "wb-properties" => properties(words, &mut header.contract).map_err(fail)?,
            "wb-requires" => {
                for word in words.split_whitespace() {
                    if !header.contract.requires(word) {
                        header.contract.requires.push(word.to_string());
                    }
                }
            }
            "wb-supports" => {
                for word in words.split_whitespace() {
                    if !contract::SUPPORTABLE.iter().any(|(k, _)| *k == word) {
                        let known: Vec<&str> =
                            contract::SUPPORTABLE.iter().map(|(k, _)| *k).collect();
                        header.warnings.push(format!(
                            "the recipe's `# wb-supports:` line (line {at}) names `{word}`, which is not an optional kit key ({}) — ignored",
                            known.join(" ")
                        ));
                    } else if !header.contract.supports(word) {
                        header.contract.supports.push(word.to_string());
                    }
                }
            }
            "wb-readonly" => header.readonly.extend(
                words
                    .split('|')
                    .map(|p| p.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    .filter(|p| !p.is_empty()),
            ),
            "wb-passthrough" => {
                for name in words.split_whitespace() {
                    check_passthrough(name, provider)?;
                    if !header.passthrough.iter().any(|n| n == name) {
                        header.passthrough.push(name.to_string());
                    }
                }
            }
            "wb-artifacts" => {
                for name in words.split_whitespace() {
                    let artifact = Artifact::parse(name).ok_or_else(|| {
                        let known: Vec<&str> = Artifact::ALL.iter().map(|a| a.name()).collect();
                        format!(
                            "the recipe's `# wb-artifacts:` line names `{name}`, which the kit does not render (known: {})",
                            known.join(", ")
                        )
                    })?;
                    if !header.artifacts.contains(&artifact) {
                        header.artifacts.push(artifact);
                    }
                }
            }
            "wb-cli" => header.cli.extend(
                words
                    .split_whitespace()
                    .map(|w| w.split('|').map(str::to_string).collect()),
            ),
            d if KNOWN.contains(&d) => {}
            d if d.starts_with("wb-") && !d.contains(char::is_whitespace) => header.warnings.push(
                format!("the recipe's header has an unknown directive `{d}` — ignored"),
            ),
            _ => {}
        }
    }
    for key in &header.contract.requires {
        let known = crate::core::deployment::KNOWN_KEYS.contains(&key.as_str())
            || header.contract.property(key).is_some();
        if !known {
            return Err(format!(
                "the recipe's `# wb-requires:` line names `{key}`, which is neither a key the kit reads nor one of the recipe's `# wb-properties:`"
            ));
        }
    }
    Ok(header)
}

impl Header {
    /// The set passthrough that means "build from source" (a name ending in
    /// `_DOCKERFILE`, set in the caller's environment): a build context cannot be
    /// fingerprinted, and no artifact names an image.
    pub fn builds_from_source(&self, vars: &crate::edge::Vars) -> Option<&str> {
        self.passthrough
            .iter()
            .find(|n| n.ends_with("_DOCKERFILE") && vars.is_set(n))
            .map(String::as_str)
    }
}

/// `# wb-properties: NAME[:type] …` into the contract: typed, named like a key, once.
fn properties(words: &str, contract: &mut Contract) -> Result<(), String> {
    for word in words.split_whitespace() {
        let (name, ty) = match word.split_once(':') {
            Some((name, ty)) => (
                name,
                PropType::parse(ty).ok_or_else(|| {
                    let known: Vec<&str> = PropType::ALL.iter().map(|t| t.name()).collect();
                    format!(
                        "the recipe's `# wb-properties:` line gives `{name}` the type `{ty}`, which is not one of: {}",
                        known.join(", ")
                    )
                })?,
            ),
            None => (word, PropType::String),
        };
        if let Some(why) = contract::property_name_problem(name) {
            return Err(format!("the recipe's `# wb-properties:` line: {why}"));
        }
        if contract.property(name).is_some() {
            return Err(format!(
                "the recipe's `# wb-properties:` lines declare `{name}` twice — declare each property once"
            ));
        }
        contract.properties.push((name.to_string(), ty));
    }
    Ok(())
}

fn check_passthrough(name: &str, provider: &str) -> Result<(), String> {
    if !names::is_secret_name(name) {
        return Err(format!(
            "the recipe's `# wb-passthrough:` line names `{name}`, which is not a variable name ({})",
            names::SECRET_RULE
        ));
    }
    let own = format!("WB_{}_", provider.to_ascii_uppercase().replace('-', "_"));
    let kit_owned = (name.starts_with("WB_") && !name.starts_with(&own))
        || super::sealed::KIT_INPUTS.contains(&name)
        || super::sealed::is_shell_sensitive(name);
    if kit_owned {
        return Err(format!(
            "the recipe's `# wb-passthrough:` line names `{name}`, which the kit sets itself or which changes how bash runs — a recipe may pass through only its own CLI's credentials and its own `{own}*` settings"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_top_comment_block_only() {
        let script = "#!/usr/bin/env bash\n# wb-passthrough: FLY_API_TOKEN FLY_ACCESS_TOKEN\n# wb-artifacts: fly-toml\n# wb-cli: flyctl|fly\n#\nset -e\n# wb-passthrough: LATE\n";
        let h = scan(script, "fly").unwrap();
        assert_eq!(h.cli, [vec!["flyctl".to_string(), "fly".to_string()]]);
        assert_eq!(h.passthrough, ["FLY_API_TOKEN", "FLY_ACCESS_TOKEN"]);
        assert_eq!(h.artifacts, [Artifact::FlyToml]);
        assert!(h.warnings.is_empty());
    }

    #[test]
    fn kit_names_and_shell_steering_names_are_refused() {
        for bad in [
            "PATH",
            "WB_HOME",
            "BASH_ENV",
            "LD_PRELOAD",
            "lower",
            "UPDATE",
            "WB_K8S_X",
        ] {
            assert!(
                scan(&format!("# wb-passthrough: {bad}\n"), "fly").is_err(),
                "{bad}"
            );
        }
        let own = scan("# wb-passthrough: WB_FLY_DOCKERFILE\n", "fly").unwrap();
        assert_eq!(own.passthrough, ["WB_FLY_DOCKERFILE"]);
    }

    #[test]
    fn contract_v2_directives_accumulate_and_are_checked() {
        let h = scan(
            "# wb-properties: HOST:ssh-target DOMAIN\n# wb-properties: PUBLISH:port\n# wb-requires: APP HOST\n# wb-supports: SIZE\n# wb-readonly: fly status|fly apps list\n",
            "ssh",
        )
        .unwrap();
        assert_eq!(
            h.contract.properties,
            [
                ("HOST".to_string(), PropType::SshTarget),
                ("DOMAIN".to_string(), PropType::String),
                ("PUBLISH".to_string(), PropType::Port)
            ]
        );
        assert_eq!(h.contract.requires, ["APP", "HOST"]);
        assert_eq!(h.contract.supports, ["SIZE"]);
        assert_eq!(h.readonly.len(), 2);
        let twice = scan("# wb-properties: HOST\n# wb-properties: HOST\n", "x").unwrap_err();
        assert!(
            twice.contains("line 2") && twice.contains("`HOST` twice"),
            "{twice}"
        );
        assert!(scan("# wb-properties: host\n", "x").is_err());
        assert!(scan("# wb-properties: APP\n", "x").is_err());
        assert!(scan("# wb-properties: X:colour\n", "x").is_err());
        assert!(scan("# wb-requires: NOPE\n", "x").is_err());
    }

    #[test]
    fn unknown_directives_and_artifacts() {
        let h = scan("# wb-colour: red\n", "x").unwrap();
        assert_eq!(h.warnings.len(), 1);
        assert!(scan("# wb-artifacts: helm-chart\n", "x").is_err());
    }
}
