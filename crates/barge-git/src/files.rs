//! Reading and moving what git keeps on disk, where a git process would cost more than the
//! answer: a promotion asks for its checkout's commit several times and moves its worktree in
//! and out of the cache's pool, and each git process is a fork, an exec and a repository
//! set-up (a millisecond or more, several with a large parent process).
//!
//! Only git's documented layout (gitrepository-layout(5)) is read: `.git` files naming a
//! worktree's administrative directory, `HEAD`, loose refs and `packed-refs`. Anything else (a
//! reftable repository, relative worktree links, a symbolic ref to a missing branch) answers
//! `None`, and the caller asks git.

use std::path::{Path, PathBuf};

/// The repository directory of a checkout: `dir/.git` itself, or the administrative directory
/// a worktree's `.git` file names (absolute paths only).
fn git_dir(dir: &Path) -> Option<PathBuf> {
    let dot_git = dir.join(".git");
    let meta = std::fs::metadata(&dot_git).ok()?;
    if meta.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let path = PathBuf::from(text.strip_prefix("gitdir: ")?.trim_end());
    path.is_absolute().then_some(path)
}

/// The directory shared by all worktrees of a repository (refs, objects).
fn common_dir(git_dir: &Path) -> PathBuf {
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim_end()),
        Err(_) => git_dir.to_path_buf(),
    }
}

fn object_id(text: &str) -> Option<String> {
    let id = text.trim_end();
    (matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The commit a ref (`refs/...`) of the repository at `git_dir` names: its loose file, else its
/// line in `packed-refs`. Symbolic refs are not followed.
pub fn read_ref(git_dir: &Path, name: &str) -> Option<String> {
    if !name.starts_with("refs/") || name.contains("..") {
        return None;
    }
    let common = common_dir(git_dir);
    if let Ok(text) = std::fs::read_to_string(common.join(name)) {
        return object_id(&text);
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (id, refname) = line.split_once(' ')?;
        (refname == name).then(|| object_id(id)).flatten()
    })
}

/// The commit checked out at `dir` (a repository or a worktree).
pub fn head(dir: &Path) -> Option<String> {
    let git_dir = git_dir(dir)?;
    let text = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    match text.strip_prefix("ref: ") {
        Some(name) => read_ref(&git_dir, name.trim_end()),
        None => object_id(&text),
    }
}

/// Whether the checkout at `dir` is (or was once made) a sparse checkout: its repository
/// directory holds `info/sparse-checkout`, which `git sparse-checkout` writes. A checkout this
/// cannot read counts as sparse (the careful answer: such a worktree is not reused).
pub fn is_sparse(dir: &Path) -> bool {
    git_dir(dir).is_none_or(|git_dir| git_dir.join("info/sparse-checkout").exists())
}

/// Whether the checkout at `dir` has initialised submodules: its repository directory holds
/// `modules/`, where `git submodule update --init` keeps their repositories. A checkout this
/// cannot read counts as having some (such a worktree is not reused).
pub fn has_submodules(dir: &Path) -> bool {
    git_dir(dir).is_none_or(|git_dir| git_dir.join("modules").exists())
}

/// Moves the worktree at `from` to `to`, as `git worktree move` does: the directory is renamed
/// and the administrative directory's `gitdir` is pointed at the new place. `false` (nothing
/// moved) when `from` is not a worktree linked by an absolute path.
pub fn move_worktree(from: &Path, to: &Path) -> bool {
    let Some(admin) = git_dir(from).filter(|d| d.join("gitdir").is_file()) else {
        return false;
    };
    if !to.is_absolute() || std::fs::rename(from, to).is_err() {
        return false;
    }
    let back = format!("{}\n", to.join(".git").display());
    if std::fs::write(admin.join("gitdir"), back).is_err() {
        // Undo: the worktree must stay where its administrative directory says it is.
        let _ = std::fs::rename(to, from);
        return false;
    }
    true
}
