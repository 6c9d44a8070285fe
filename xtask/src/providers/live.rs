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
