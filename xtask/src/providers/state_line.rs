//! The `state: {json}` line a recipe's `status` prints on stdout (contract v2, SPEC
//! §13.1, §18): `{"present": bool, "image": str|null, "instances": int, "regions": [...]}`.
//! `apply`, `recipe check` and drift read it through [`parse`].

/// What a recipe's `status` says about the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderState {
    pub present: bool,
    pub image: Option<String>,
    pub instances: u64,
    pub regions: Vec<String>,
}

/// The last `state:` line of `stdout`: `Ok(None)` when there is none, `Err` when the
/// line is not the object the contract describes.
pub fn parse(stdout: &str) -> Result<Option<ProviderState>, String> {
    let Some(line) = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("state:"))
        .next_back()
    else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("the recipe's `state:` line is not JSON: {e}"))?;
    let bad = |what: &str| format!("the recipe's `state:` line: {what}");
    let object = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object"))?;
    let present = object
        .get("present")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| bad("`present` must be true or false"))?;
    let image = match object.get("image") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("`image` must be a string or null")),
    };
    let instances = match object.get("instances") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("`instances` must be a whole number"))?,
    };
    let regions = match object.get("regions") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|r| r.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`regions` must be a list of strings"))?,
        Some(_) => return Err(bad("`regions` must be a list of strings")),
    };
    Ok(Some(ProviderState {
        present,
        image,
        instances,
        regions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_state_line() {
        let out = "App\nstate: {\"present\": false}\nstate: {\"present\": true, \"image\": \"x:1\", \"instances\": 2, \"regions\": [\"iad\"]}\n";
        let s = parse(out).unwrap().unwrap();
        assert!(s.present);
        assert_eq!(s.image.as_deref(), Some("x:1"));
        assert_eq!(s.instances, 2);
        assert_eq!(s.regions, ["iad"]);
        assert_eq!(parse("nothing\n").unwrap(), None);
        assert!(parse("state: {\"present\": 1}\n").is_err());
        assert!(parse("state: nope\n").is_err());
    }
}
