//! Ollama model names: `[namespace/]model[:tag]`, each part starting with a letter, digit or `_`,
//! then letters, digits, `_`, `-` or `.`, at most 80 characters per part (Ollama's
//! `types/model/name.go`). Names from users are checked before anything is sent.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ollama model name {name:?}: {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: String,
}

fn check_part(name: &str, part: &str, what: &str) -> Result<(), NameError> {
    let err = |reason: String| NameError {
        name: name.to_owned(),
        reason,
    };
    let first = part
        .chars()
        .next()
        .ok_or_else(|| err(format!("the {what} is empty")))?;
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(err(format!(
            "the {what} must start with a letter, digit or `_`, not {first:?}"
        )));
    }
    if let Some(bad) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(err(format!(
            "the {what} may hold only letters, digits, `_`, `-` and `.`, not {bad:?}"
        )));
    }
    if part.len() > 80 {
        return Err(err(format!(
            "the {what} has {} characters; at most 80",
            part.len()
        )));
    }
    Ok(())
}

/// Checks a model name against Ollama's rules.
pub fn validate(name: &str) -> Result<(), NameError> {
    let (path, tag) = match name.rsplit_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (name, None),
    };
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 3 {
        return Err(NameError {
            name: name.to_owned(),
            reason: "at most host/namespace/model".into(),
        });
    }
    for (i, p) in parts.iter().enumerate() {
        let what = if i + 1 == parts.len() {
            "model name"
        } else {
            "namespace"
        };
        check_part(name, p, what)?;
    }
    if let Some(t) = tag {
        check_part(name, t, "tag")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_ollama() {
        for ok in [
            "tierforge-basic",
            "tierforge-basic:1.0.0",
            "team/tierforge-expert:latest",
            "_x.y-z:v2",
        ] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "tier forge",
            "x:",
            "x:-1",
            "a/b/c/d",
            "ünï",
            &"a".repeat(81),
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
