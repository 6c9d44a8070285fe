//! The `state: {json}` line a recipe's read-only `status` prints (SPEC §13.1):
//! `{"present": bool, "image": str|null, "instances": int, "regions": [...]}`. Parsed in
//! one small function so every reader (drift, releases, `recipe check`) shares it.

use serde_json::Value;

/// What the place says is running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub present: bool,
    pub image: Option<String>,
    pub instances: u64,
    pub regions: Vec<String>,
}

/// The last `state: {json}` line of `stdout`, if one parses. A line that is not a JSON
/// object with a boolean `present` does not count.
pub fn parse(stdout: &str) -> Option<Live> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("state:"))?;
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    Some(Live {
        present: v.get("present")?.as_bool()?,
        image: v
            .get("image")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        instances: v.get("instances").and_then(Value::as_u64).unwrap_or(0),
        regions: v
            .get("regions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// An image reference as registries resolve it: `docker.io/library/` dropped, `:latest`
/// added when there is neither a tag nor a digest.
fn normalized(image: &str) -> String {
    let short = image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("docker.io/"))
        .unwrap_or(image);
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') || last.contains('@') {
        short.to_string()
    } else {
        format!("{short}:latest")
    }
}

/// How what runs differs from `release` (SPEC §14 "Drift"): presence, image (digests
/// when both sides report one, else normalized references), instance count.
pub fn drift(release: &crate::state::releases::Release, live: &Live) -> Vec<String> {
    let n = release.number;
    if !live.present {
        return vec![format!(
            "re-create: the provider reports no app (release {n} was applied; it was removed behind the kit's back)"
        )];
    }
    let mut out = Vec::new();
    let recorded = release.image_id.as_deref().unwrap_or(&release.image);
    if let Some(running) = &live.image
        && normalized(running) != normalized(recorded)
    {
        out.push(format!(
            "re-deploy: {running} runs, release {n} deployed {recorded}"
        ));
    }
    if let Some(had) = release.instances
        && had != live.instances
    {
        out.push(format!(
            "re-deploy: {} instance(s) run, release {n} left {had}",
            live.instances
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_state_line() {
        let out = "App\nstate: {\"present\": false}\nstate: {\"present\": true, \"image\": \"a:1\", \"instances\": 2, \"regions\": [\"ams\"]}\n";
        assert_eq!(
            parse(out),
            Some(Live {
                present: true,
                image: Some("a:1".into()),
                instances: 2,
                regions: vec!["ams".into()],
            })
        );
        assert_eq!(parse("state: nope\n"), None);
        assert_eq!(parse("no line\n"), None);
    }
}
