//! tar and untar, with Kargo's options and size limits (pkg/promotion/runner/builtin
//! tar_creator.go and tar_extractor.go): 50 MB per file and 100 MB in all, uncompressed.
//!
//! Both write into a temporary path beside their output and move it into place only when
//! complete, so a failure never leaves a half-written archive or directory. untar refuses an
//! archive with an entry that would land outside its output directory (an absolute path,
//! `..`, a symlink pointing outside, or an entry under an earlier symlink) instead of
//! skipping the entry as Kargo does: such an archive is hostile or broken, and saying so is
//! clearer than a partial extraction.

use super::{StepCtx, StepError, StepResult, config, done, partial_beside, remove_any};
use crate::BoxFuture;
use barge_core::glob::IgnoreRules;
use barge_core::step_config::{Tar, Untar};
use serde_json::{Map, Value as Json};
use std::io::{BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};

/// How much one archive may hold, uncompressed (Kargo's limits).
#[derive(Clone, Copy, Debug)]
struct Limits {
    file: u64,
    total: u64,
}

const LIMITS: Limits = Limits {
    file: 50 * 1024 * 1024,
    total: 100 * 1024 * 1024,
};

fn ignore_rules(step: &str, ignore: Option<&str>) -> Result<IgnoreRules, StepError> {
    // Without patterns, both steps leave out .git, as Kargo's do.
    IgnoreRules::parse(ignore.unwrap_or_default(), ".git")
        .map_err(|e| StepError::Invalid(format!("{step} ignore: {e}")))
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    step: &str,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StepError::Invalid(format!("{step}: {e}")))?
        .map_err(|e| StepError::Invalid(format!("{step}: {e}")))
}

pub(super) fn tar<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Tar = config("tar", cfg)?;
        for (field, value) in [("inPath", &c.in_path), ("outPath", &c.out_path)] {
            if value.is_empty() {
                return Err(StepError::Invalid(format!("tar: `{field}` is required")));
            }
        }
        let (input, output) = (ctx.path(&c.in_path)?, ctx.path(&c.out_path)?);
        if std::fs::symlink_metadata(&input).is_err() {
            return Err(StepError::Invalid(format!(
                "tar: input path {:?} does not exist",
                c.in_path
            )));
        }
        let rules = ignore_rules("tar", c.ignore.as_deref())?;
        let out_name = c.out_path.clone();
        blocking("tar", move || {
            if let Some(parent) = output.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create the directory of {out_name}: {e}"))?;
            }
            let partial = partial_beside(&output);
            let made = write_archive(&input, &partial, c.gzip, &rules, LIMITS)
                .and_then(|()| std::fs::rename(&partial, &output).map_err(|e| e.to_string()));
            if made.is_err() {
                remove_any(&partial);
            }
            made.map_err(|e| format!("cannot create the archive {out_name}: {e}"))
        })
        .await?;
        done(Map::new())
    })
}

fn write_archive(input: &Path, archive: &Path, gzip: bool, rules: &IgnoreRules, limits: Limits) -> Result<(), String> {
    let file = std::fs::File::create(archive).map_err(|e| e.to_string())?;
    let file = if gzip {
        let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        fill(encoder, input, rules, limits, archive)?
            .finish()
            .map_err(|e| e.to_string())?
    } else {
        fill(file, input, rules, limits, archive)?
    };
    file.sync_all().map_err(|e| e.to_string())
}

/// Writes the tree at `input` as a tar stream into `sink` and returns the sink.
fn fill<W: Write>(sink: W, input: &Path, rules: &IgnoreRules, limits: Limits, archive: &Path) -> Result<W, String> {
    // A single file is archived under its own name; a directory's contents at the root.
    let root_name = if input.is_dir() {
        PathBuf::new()
    } else {
        PathBuf::from(input.file_name().unwrap_or_default())
    };
    let entries = listed(input, &root_name, rules, limits, archive)?;
    write_entries(sink, &entries)
}

/// One walk lists what the archive holds; the limits are checked on that whole list (as
/// Kargo sums its source's size before writing), so an oversized tree is refused before a
/// byte of the archive is written.
fn listed(
    input: &Path,
    root_name: &Path,
    rules: &IgnoreRules,
    limits: Limits,
    archive: &Path,
) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    list_tree(input, root_name, rules, archive, &mut entries)?;
    let mut total = 0;
    for e in &entries {
        if let Kind::File(size) = e.kind {
            check_size(&e.rel.to_string_lossy(), size, limits, &mut total)?;
        }
    }
    Ok(entries)
}

/// Writes the listed entries as a tar stream into `sink` and returns the sink. A file is
/// written at the size it was listed (and checked) at, never more: one whose size changed
/// since (something still writing into the tree) is refused, as the caps were checked on
/// sizes it no longer has.
fn write_entries<W: Write>(sink: W, entries: &[Entry]) -> Result<W, String> {
    let mut builder = tar::Builder::new(sink);
    // Symlinks are archived as links, never followed out of the tree.
    builder.follow_symlinks(false);
    for e in entries {
        let added = match e.kind {
            Kind::Dir => builder.append_dir(&e.rel, &e.abs).map_err(|err| err.to_string()),
            Kind::File(size) => append_file(&mut builder, e, size),
            Kind::Symlink => builder
                .append_path_with_name(&e.abs, &e.rel)
                .map_err(|err| err.to_string()),
        };
        added.map_err(|err| format!("{}: {err}", e.rel.display()))?;
    }
    builder.into_inner().map_err(|e| e.to_string())
}

/// Appends the file `e`, listed at `listed` bytes: its header says `listed` bytes and at most
/// that many are copied; a size other than `listed` when it is opened, or after it was copied
/// (it grew or shrank while being read), is an error.
fn append_file<W: Write>(builder: &mut tar::Builder<W>, e: &Entry, listed: u64) -> Result<(), String> {
    let changed = |now: u64| {
        format!(
            "changed size while being archived ({listed} bytes when the size limits were checked, {now} bytes now); archive it once nothing writes to it"
        )
    };
    // Still a plain file, not one swapped since the listing for a symbolic link (which open
    // would follow out of the tree) or a FIFO (which open would wait on); what opened is
    // checked again, which leaves a swap only the instant between the two.
    let replaced = || "is no longer a plain file; archive it once nothing writes to it".to_string();
    let before = std::fs::symlink_metadata(&e.abs).map_err(|err| err.to_string())?;
    if !before.is_file() {
        return Err(replaced());
    }
    let file = std::fs::File::open(&e.abs).map_err(|err| err.to_string())?;
    let meta = file.metadata().map_err(|err| err.to_string())?;
    if !meta.is_file() {
        return Err(replaced());
    }
    if meta.len() != listed {
        return Err(changed(meta.len()));
    }
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_size(listed);
    let mut body = (&file).take(listed);
    builder
        .append_data(&mut header, &e.rel, &mut body)
        .map_err(|err| err.to_string())?;
    let now = file.metadata().map_err(|err| err.to_string())?.len();
    if body.limit() != 0 || now != listed {
        return Err(changed(now));
    }
    Ok(())
}

/// What an archived entry is: a file has its size.
#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File(u64),
    Symlink,
}

/// An entry of the archive: its path on disk and its name in the archive.
struct Entry {
    abs: PathBuf,
    rel: PathBuf,
    kind: Kind,
}

/// Lists the entries of the tree at `abs` the archive holds (named from `rel`), in archive
/// order: directories before their contents, sorted, so the same tree gives the same
/// archive. Ignored paths, the archive itself (it may lie inside the tree), and sockets,
/// FIFOs and devices (no place in an archive of config files) are left out.
fn list_tree(abs: &Path, rel: &Path, rules: &IgnoreRules, archive: &Path, out: &mut Vec<Entry>) -> Result<(), String> {
    if abs == archive {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(abs).map_err(|e| format!("{}: {e}", rel.display()))?;
    if rules.ignores(&rel.to_string_lossy(), meta.is_dir()) {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        Kind::File(meta.len())
    } else if meta.file_type().is_symlink() {
        Kind::Symlink
    } else {
        return Ok(());
    };
    // The root directory has no entry of its own: its contents are at the archive's root.
    if !matches!(kind, Kind::Dir) || !rel.as_os_str().is_empty() {
        out.push(Entry {
            abs: abs.to_path_buf(),
            rel: rel.to_path_buf(),
            kind,
        });
    }
    if let Kind::Dir = kind {
        let mut entries: Vec<_> = std::fs::read_dir(abs)
            .and_then(|d| d.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", rel.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            list_tree(&e.path(), &rel.join(e.file_name()), rules, archive, out)?;
        }
    }
    Ok(())
}

fn check_size(name: &str, size: u64, limits: Limits, total: &mut u64) -> Result<(), String> {
    if size > limits.file {
        return Err(format!(
            "{name} is {size} bytes, over the limit of {} bytes for one file",
            limits.file
        ));
    }
    *total += size;
    if *total > limits.total {
        return Err(format!(
            "the files add up to more than the limit of {} bytes",
            limits.total
        ));
    }
    Ok(())
}

pub(super) fn untar<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Untar = config("untar", cfg)?;
        for (field, value) in [("inPath", &c.in_path), ("outPath", &c.out_path)] {
            if value.is_empty() {
                return Err(StepError::Invalid(format!("untar: `{field}` is required")));
            }
        }
        let (input, output) = (ctx.path(&c.in_path)?, ctx.path(&c.out_path)?);
        if output == ctx.work {
            return Err(StepError::Invalid(
                "untar: outPath is the whole work directory, which extracting would replace; name a directory inside it"
                    .into(),
            ));
        }
        if !input.is_file() {
            return Err(StepError::Invalid(format!(
                "untar: archive {:?} does not exist",
                c.in_path
            )));
        }
        let rules = ignore_rules("untar", c.ignore.as_deref())?;
        let strip = c.strip_components as usize;
        let in_name = c.in_path.clone();
        blocking("untar", move || {
            if let Some(parent) = output.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let partial = partial_beside(&output);
            let made = extract(&input, &partial, strip, &rules, LIMITS).and_then(|()| {
                // The output directory is replaced, as Kargo's is.
                remove_any(&output);
                std::fs::rename(&partial, &output).map_err(|e| e.to_string())
            });
            if made.is_err() {
                remove_any(&partial);
            }
            made.map_err(|e| format!("cannot extract {in_name}: {e}"))
        })
        .await?;
        done(Map::new())
    })
}

/// A reader that fails once more than `left` bytes came through: the decompressed stream is
/// bounded even where entries are skipped unread (a gzip bomb in a skipped entry).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(
                "the archive expands past its size limit (with room for headers); refusing a decompression bomb",
            )
        })?;
        Ok(n)
    }
}

/// The safe components of an entry's path: never absolute, never `..`.
fn entry_components(path: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(PathBuf::from(p)),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "entry {} contains `..` and would land outside the output directory",
                    path.display()
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("entry {} has an absolute path", path.display()));
            }
        }
    }
    Ok(out)
}

/// Refuses a symlink whose target is absolute or climbs out of the output directory from
/// `depth` (the number of directories above the link inside it).
fn check_link_target(name: &Path, target: &Path, mut depth: usize) -> Result<(), String> {
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => {
                return Err(format!(
                    "symlink {} points to {}, outside the output directory",
                    name.display(),
                    target.display()
                ));
            }
        }
    }
    Ok(())
}

fn extract(input: &Path, dest: &Path, strip: usize, rules: &IgnoreRules, limits: Limits) -> Result<(), String> {
    let mut file = std::io::BufReader::new(std::fs::File::open(input).map_err(|e| e.to_string())?);
    let gzipped = file.fill_buf().map_err(|e| e.to_string())?.starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(Capped {
        inner: stream,
        // Room for the headers and padding of many small files besides their contents.
        left: 2 * limits.total + 1024 * 1024,
    });
    std::fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    let mut total = 0;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("reading the archive: {e}"))?;
        let kind = entry.header().entry_type();
        // Like Kargo, only files, directories and symlinks are extracted (no hard links,
        // devices or FIFOs).
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            continue;
        }
        let name = entry.path().map_err(|e| e.to_string())?.into_owned();
        let parts = entry_components(&name)?;
        let Some(parts) = parts.get(strip..).filter(|p| !p.is_empty()) else {
            continue;
        };
        let rel: PathBuf = parts.iter().collect();
        if rules.ignores(&rel.to_string_lossy(), kind.is_dir()) {
            continue;
        }
        // No entry is written through a symlink an earlier entry made.
        let mut at = dest.to_path_buf();
        for p in &parts[..parts.len() - 1] {
            at.push(p);
            if at.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(format!(
                    "entry {} lies under the symlink {}",
                    name.display(),
                    p.display()
                ));
            }
        }
        let target = dest.join(&rel);
        let parent = target.parent().unwrap_or(dest);
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", rel.display()))?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", rel.display()))?;
            continue;
        }
        // A later entry of the same name replaces an earlier file or link (never writes through it).
        if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&target).map_err(|e| format!("{}: {e}", rel.display()))?;
        }
        if kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("symlink {} has no target", name.display()))?
                .into_owned();
            check_link_target(&name, &link, parts.len() - 1)?;
            std::os::unix::fs::symlink(&link, &target).map_err(|e| format!("{}: {e}", rel.display()))?;
            continue;
        }
        check_size(&name.to_string_lossy(), entry.size(), limits, &mut total)?;
        // The owner can always read and replace what was extracted (later steps, git).
        let mode = entry.header().mode().unwrap_or(0o600) & 0o777 | 0o600;
        let mut out = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&target)
                .map_err(|e| format!("{}: {e}", rel.display()))?
        };
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("{}: {e}", rel.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, usize)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, size) in files {
            let p = dir.path().join("in").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![b'x'; *size]).unwrap();
        }
        dir
    }

    const SMALL: Limits = Limits { file: 10, total: 15 };

    #[test]
    fn the_size_limits_hold_on_both_sides() {
        let rules = IgnoreRules::parse("", ".git").unwrap();
        let dir = tree(&[("a", 8), ("b", 8)]);
        let (input, archive) = (dir.path().join("in"), dir.path().join("a.tar"));
        let err = write_archive(&input, &archive, false, &rules, SMALL).unwrap_err();
        assert!(err.contains("more than the limit of 15 bytes"), "{err}");
        let dir = tree(&[("big", 11)]);
        let err = write_archive(&dir.path().join("in"), &archive, false, &rules, SMALL).unwrap_err();
        assert!(err.contains("big is 11 bytes, over the limit of 10"), "{err}");

        // An archive within the default limits, extracted with smaller ones.
        let dir = tree(&[("a", 8), ("b", 8)]);
        let (input, archive) = (dir.path().join("in"), dir.path().join("a.tgz"));
        write_archive(&input, &archive, true, &rules, LIMITS).unwrap();
        let err = extract(&archive, &dir.path().join("out"), 0, &rules, SMALL).unwrap_err();
        assert!(err.contains("more than the limit of 15 bytes"), "{err}");
        extract(&archive, &dir.path().join("ok"), 0, &rules, LIMITS).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ok/b")).unwrap(), vec![b'x'; 8]);
    }

    /// A file that grows (or shrinks) between the listing the caps were checked on and its
    /// writing is refused, not archived past the cap at its new size; the same listing of an
    /// unchanged tree is written whole.
    #[test]
    fn a_file_that_changes_size_after_the_caps_were_checked_is_refused() {
        let rules = IgnoreRules::parse("", ".git").unwrap();
        let dir = tree(&[("a", 8), ("b", 4)]);
        let (input, archive) = (dir.path().join("in"), dir.path().join("a.tar"));
        let entries = listed(&input, Path::new(""), &rules, SMALL, &archive).unwrap();
        // Grown past the one-file cap (10) after it was listed at 8 bytes.
        std::fs::write(input.join("a"), vec![b'y'; 64]).unwrap();
        let err = write_entries(Vec::new(), &entries).unwrap_err();
        assert!(
            err.starts_with(
                "a: changed size while being archived (8 bytes when the size limits were checked, 64 bytes now)"
            ),
            "{err}"
        );
        // Shrunk: the header would promise bytes the file no longer has.
        std::fs::write(input.join("a"), vec![b'y'; 2]).unwrap();
        let err = write_entries(Vec::new(), &entries).unwrap_err();
        assert!(
            err.contains("(8 bytes when the size limits were checked, 2 bytes now)"),
            "{err}"
        );
        // Back at its listed size: written, with the listed sizes.
        std::fs::write(input.join("a"), vec![b'z'; 8]).unwrap();
        let bytes = write_entries(Vec::new(), &entries).unwrap();
        let mut read = tar::Archive::new(&bytes[..]);
        let sizes: Vec<(String, u64)> = read
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        assert_eq!(sizes, vec![("a".to_string(), 8), ("b".to_string(), 4)]);
        // Swapped for a symbolic link to a file outside the tree, of the listed size: refused,
        // not followed.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, vec![b's'; 8]).unwrap();
        std::fs::remove_file(input.join("a")).unwrap();
        std::os::unix::fs::symlink(&outside, input.join("a")).unwrap();
        let err = write_entries(Vec::new(), &entries).unwrap_err();
        assert!(err.starts_with("a: is no longer a plain file"), "{err}");
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_stream_cap() {
        // 4 MiB of zeros in an entry untar skips (a FIFO) still count against the cap.
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("bomb.tgz");
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::best(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Fifo);
        h.set_size(4 * 1024 * 1024);
        h.set_path("fifo").unwrap();
        h.set_cksum();
        b.append(&h, &vec![0u8; 4 * 1024 * 1024][..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
        let rules = IgnoreRules::parse("", ".git").unwrap();
        let limits = Limits {
            file: 10,
            total: 16 * 1024,
        };
        let err = extract(&archive, &dir.path().join("out"), 0, &rules, limits).unwrap_err();
        assert!(err.contains("decompression bomb"), "{err}");
    }
}
