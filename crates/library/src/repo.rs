//! Repo ids and `org/name@revision` references.

use std::fmt;
use std::str::FromStr;

use crate::error::LibraryError;

/// A model repo's id on the Hub: `org/name` (or a bare `name`, as older canonical repos are).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

/// A segment as the Hub allows it: letters, digits, `-`, `_`, `.`; no `--` or `..`; not starting
/// or ending with `-` or `.`; at most 96 characters.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.contains("--")
        && !s.contains("..")
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

impl RepoId {
    /// Parses and validates `org/name` or `name`.
    pub fn parse(s: &str) -> Result<RepoId, LibraryError> {
        let ok = match s.split_once('/') {
            Some((org, name)) => valid_segment(org) && valid_segment(name),
            None => valid_segment(s),
        };
        if ok {
            Ok(RepoId(s.to_string()))
        } else {
            Err(LibraryError::InvalidRepoId(s.to_string()))
        }
    }

    /// `org/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cache folder's name: `models--org--name`.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.0.replace('/', "--"))
    }

    /// The repo id of a cache folder name (`models--org--name`), if it is one.
    pub fn from_folder_name(name: &str) -> Option<RepoId> {
        let rest = name.strip_prefix("models--")?;
        RepoId::parse(&rest.replacen("--", "/", 1)).ok()
    }

    /// Its path segments, for URLs.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoId {
    type Err = LibraryError;
    fn from_str(s: &str) -> Result<RepoId, LibraryError> {
        RepoId::parse(s)
    }
}

impl TryFrom<String> for RepoId {
    type Error = LibraryError;
    fn try_from(s: String) -> Result<RepoId, LibraryError> {
        RepoId::parse(&s)
    }
}

impl From<RepoId> for String {
    fn from(id: RepoId) -> String {
        id.0
    }
}

/// `org/name[@revision]`: what `pull` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The repo.
    pub repo: RepoId,
    /// A branch, tag or commit; `main` when not given.
    pub revision: String,
}

/// A revision as git and the Hub accept it (no empty, `..`, spaces or control characters).
pub(crate) fn valid_revision(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 256
        && !r.contains("..")
        && r != "."
        && !r.split('/').any(|part| part.is_empty() || part == ".")
        && !r.starts_with('/')
        && !r.ends_with('/')
        && r.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '\\' | '~' | '^' | ':' | '?' | '*' | '['))
}

impl FromStr for ModelRef {
    type Err = LibraryError;
    fn from_str(s: &str) -> Result<ModelRef, LibraryError> {
        let (repo, revision) = match s.split_once('@') {
            Some((repo, rev)) if valid_revision(rev) => (repo, rev),
            Some(_) => return Err(LibraryError::InvalidRepoId(s.to_string())),
            None => (s, "main"),
        };
        Ok(ModelRef { repo: RepoId::parse(repo)?, revision: revision.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_validated_as_the_hub_does() {
        for ok in ["mlx-community/Qwen2.5-0.5B-Instruct-4bit", "gpt2", "a/b", "org_1/m.v2"] {
            assert_eq!(RepoId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "/x", "x/", "a/b/c", "a--b/c", "a/b..c", "a/.b", "a/b-", "a b/c", "../x", "a/b@main"] {
            assert!(RepoId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folder_names_round_trip() {
        let id = RepoId::parse("mlx-community/Llama-3.2-1B-Instruct-4bit").unwrap();
        assert_eq!(id.folder_name(), "models--mlx-community--Llama-3.2-1B-Instruct-4bit");
        assert_eq!(RepoId::from_folder_name(&id.folder_name()), Some(id));
        assert_eq!(RepoId::from_folder_name("models--gpt2").unwrap().as_str(), "gpt2");
        assert_eq!(RepoId::from_folder_name("datasets--x--y"), None);
    }

    #[test]
    fn model_refs_take_an_optional_revision() {
        let r: ModelRef = "org/name".parse().unwrap();
        assert_eq!((r.repo.as_str(), r.revision.as_str()), ("org/name", "main"));
        let r: ModelRef = "org/name@v1.0".parse().unwrap();
        assert_eq!(r.revision, "v1.0");
        let r: ModelRef = "org/name@refs/pr/3".parse().unwrap();
        assert_eq!(r.revision, "refs/pr/3");
        assert!("org/name@".parse::<ModelRef>().is_err());
        assert!("org/name@../x".parse::<ModelRef>().is_err());
    }
}
