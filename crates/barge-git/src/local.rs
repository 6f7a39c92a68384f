//! Commits made inside barge's own process with libgit2: `git add --all` and `git commit` are
//! two git processes (each a fork, an exec and a repository set-up) for work that is a few
//! files' stat and four small objects. The result is the commit git would make: the same tree,
//! message clean-up, author, committer and parent.
//!
//! Only where libgit2 and git agree exactly: a repository whose checkouts carry attributes
//! (`.gitattributes`, `info/attributes`, `core.attributesFile`: filter drivers such as LFS,
//! `working-tree-encoding`, which libgit2 does not run) is left to git, and so are a sparse
//! checkout and anything libgit2 refuses (an embedded repository, say). The caller then runs
//! git, which has the last word.

use std::path::Path;

/// Why a commit was left to git.
#[derive(Debug)]
pub enum Declined {
    /// A sparse checkout: libgit2's `add_all` takes the files left out of the worktree for
    /// deleted ones, where git keeps them.
    Sparse,
    /// Attributes may transform what is committed; only git applies them all.
    Attributes,
    /// libgit2 could not (its message).
    Libgit2(String),
}

impl From<git2::Error> for Declined {
    fn from(e: git2::Error) -> Self {
        Declined::Libgit2(e.message().to_string())
    }
}

/// Stages every change of the checkout at `dir` (new, modified and deleted files; ignored ones
/// stay out) and commits it on HEAD as `name <email>` (author and committer) with `message`,
/// cleaned up as `git commit -m` does. `Ok(None)` when nothing changed (git refuses an empty
/// commit). HEAD moves to the new commit, and the index matches it.
pub fn commit_all(dir: &Path, name: &str, email: &str, message: &str) -> Result<Option<String>, Declined> {
    if crate::files::is_sparse(dir) {
        return Err(Declined::Sparse);
    }
    let repo = git2::Repository::open(dir)?;
    let mut index = repo.index()?;
    // As `git add --all`: deleted files leave the index too.
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    // Checked on the staged index: a `.gitattributes` this very commit adds counts too. (Nothing
    // is written yet but blobs, which git would write again, transformed.)
    if has_attributes(&repo, &index)? {
        return Err(Declined::Attributes);
    }
    let tree_id = index.write_tree()?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
        Err(e) => return Err(e.into()),
    };
    let unchanged = match &parent {
        Some(parent) => parent.tree_id() == tree_id,
        None => index.is_empty(),
    };
    if unchanged {
        return Ok(None);
    }
    index.write()?;
    let tree = repo.find_tree(tree_id)?;
    let signature = git2::Signature::now(name, email)?;
    let message = git2::message_prettify(message, None)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = repo.commit(Some("HEAD"), &signature, &signature, &message, &tree, &parents)?;
    Ok(Some(id.to_string()))
}

/// Whether attributes could apply to files of this checkout: a `.gitattributes` file, the
/// repository's `info/attributes`, or the user's (`core.attributesFile`, else git's default
/// `$XDG_CONFIG_HOME/git/attributes`).
fn has_attributes(repo: &git2::Repository, index: &git2::Index) -> Result<bool, git2::Error> {
    let users = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
        .map(|config| config.join("git/attributes"));
    // (A worktree reads `info/attributes` from the directory all worktrees share.)
    if repo.commondir().join("info/attributes").exists()
        || repo.config()?.get_path("core.attributesFile").is_ok()
        || users.is_some_and(|file| file.exists())
    {
        return Ok(true);
    }
    Ok(index
        .iter()
        .any(|entry| entry.path == b".gitattributes" || entry.path.ends_with(b"/.gitattributes")))
}
