//! An API-faithful test server for GitHub's REST "Git database" endpoints (blobs, trees,
//! commits, refs), backed by real bare repositories: what the API makes is written with git
//! (`hash-object -w`, `mktree`, `commit-tree`, `update-ref`), so a `git clone` afterwards sees
//! exactly what the API calls made. It is not GitHub: it answers the documented requests and
//! status codes barge's github-push uses (<https://docs.github.com/en/rest/git>), no others.
//!
//! - Repositories are `<root>/<owner>/<repo>.git`, served at `/repos/{owner}/{repo}/git/…`.
//! - Every request must carry `Authorization: Bearer <token>` (or `token <token>`): 401
//!   otherwise, as GitHub answers bad credentials.
//! - Ref updates are fast-forwards unless `force` is set (422 "Update is not a fast forward"
//!   otherwise, as GitHub answers), and compare-and-swap through `git update-ref`.
//! - Commits created without author, committer or signature are "verified" in the GET commit
//!   answer, as GitHub signs such commits made by an App or bot ("Signature verification for
//!   bots", <https://docs.github.com/en/authentication/managing-commit-signature-verification/about-commit-signature-verification>).
//!   The server records that; it signs no bytes.

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The identity commits made without an author are attributed to (the token's App).
pub const APP_NAME: &str = "barge-test-app[bot]";
pub const APP_EMAIL: &str = "41898282+barge-test-app[bot]@users.noreply.github.com";

/// A running test server; it stops when the test's runtime shuts down.
#[derive(Clone)]
pub struct GitHubApi {
    /// e.g. `http://127.0.0.1:41234` (the API base: barge's `prAPIs` URL).
    pub url: String,
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    token: String,
    /// Commits this server made without custom author, committer or signature.
    verified: Mutex<HashSet<String>>,
    /// A concurrent writer: before the next update of this branch, commit this file on it.
    race: Mutex<Option<Race>>,
    /// `METHOD /path` of every request, in order.
    calls: Mutex<Vec<String>>,
}

struct Race {
    branch: String,
    path: String,
    content: String,
}

type Reply = (StatusCode, Json<Value>);

fn answer(status: StatusCode, body: Value) -> Reply {
    (status, Json(body))
}

fn refused(status: StatusCode, message: &str) -> Reply {
    answer(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest/git", "status": status.as_u16().to_string()}),
    )
}

fn unprocessable(message: &str) -> Reply {
    refused(StatusCode::UNPROCESSABLE_ENTITY, message)
}

impl GitHubApi {
    /// Starts the server on a loopback port over the repositories below `root`; requests
    /// must carry `token`.
    pub async fn start(root: &Path, token: &str) -> GitHubApi {
        let (listener, addr) = crate::runtime::loopback_listener();
        let server = GitHubApi {
            url: format!("http://{addr}"),
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                token: token.to_string(),
                verified: Mutex::default(),
                race: Mutex::default(),
                calls: Mutex::default(),
            }),
        };
        type Named = UrlPath<(String, String, String)>;
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/git/ref/{*name}",
                get(|State(s): State<GitHubApi>, h: HeaderMap, UrlPath((o, r, n)): Named| async move {
                    s.handle(&h, Method::GET, &o, &r, &n, Value::Null).await
                }),
            )
            .route(
                "/repos/{owner}/{repo}/git/commits/{sha}",
                get(|State(s): State<GitHubApi>, h: HeaderMap, UrlPath((o, r, n)): Named| async move {
                    s.handle(&h, Method::GET, &o, &r, &format!("commits/{n}"), Value::Null).await
                }),
            )
            .route(
                "/repos/{owner}/{repo}/git/{kind}",
                post(
                    |State(s): State<GitHubApi>, h: HeaderMap, UrlPath((o, r, k)): Named, Json(b): Json<Value>| async move {
                        s.handle(&h, Method::POST, &o, &r, &k, b).await
                    },
                ),
            )
            .route(
                "/repos/{owner}/{repo}/git/refs/{*name}",
                patch(
                    |State(s): State<GitHubApi>, h: HeaderMap, UrlPath((o, r, n)): Named, Json(b): Json<Value>| async move {
                        s.handle(&h, Method::PATCH, &o, &r, &n, b).await
                    },
                ),
            )
            .fallback(|| async { refused(StatusCode::NOT_FOUND, "Not Found") })
            .with_state(server.clone());
        // On a runtime of its own (a test may block its own), stopped when the test's
        // runtime shuts down.
        crate::runtime::serve("github-api", listener, app);
        server
    }

    /// Before the next update of `branch` through the API, commit `path` = `content` on it,
    /// as another writer pushing in between would.
    pub fn race_next_update(&self, branch: &str, path: &str, content: &str) {
        *self.inner.race.lock().expect("race") = Some(Race {
            branch: branch.to_string(),
            path: path.to_string(),
            content: content.to_string(),
        });
    }

    /// `METHOD /path` of every request so far (never headers: they hold the token).
    pub fn calls(&self) -> Vec<String> {
        self.inner.calls.lock().expect("calls").clone()
    }

    /// Whether the server made `sha` as a commit GitHub would sign (see the module docs).
    pub fn is_verified(&self, sha: &str) -> bool {
        self.inner.verified.lock().expect("verified").contains(sha)
    }

    async fn handle(
        &self,
        headers: &HeaderMap,
        method: Method,
        owner: &str,
        repo: &str,
        rest: &str,
        body: Value,
    ) -> Reply {
        let what = match method {
            Method::GET if rest.starts_with("commits/") => format!("GET /repos/{owner}/{repo}/git/{rest}"),
            Method::GET => format!("GET /repos/{owner}/{repo}/git/ref/{rest}"),
            Method::PATCH => format!("PATCH /repos/{owner}/{repo}/git/refs/{rest}"),
            _ => format!("{method} /repos/{owner}/{repo}/git/{rest}"),
        };
        self.inner.calls.lock().expect("calls").push(what);
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")));
        match given {
            None => return refused(StatusCode::UNAUTHORIZED, "Requires authentication"),
            Some(t) if t != self.inner.token => return refused(StatusCode::UNAUTHORIZED, "Bad credentials"),
            Some(_) => {}
        }
        let dir = self.inner.root.join(owner).join(format!("{repo}.git"));
        if [owner, repo].iter().any(|p| p.contains("..") || p.is_empty()) || !dir.is_dir() {
            return refused(StatusCode::NOT_FOUND, "Not Found");
        }
        let repo = Repo {
            dir,
            api: format!("{}/repos/{owner}/{repo}", self.url),
            html: format!("{}/{owner}/{repo}", self.url),
        };
        match (method, rest) {
            (Method::GET, r) if r.starts_with("commits/") => self.get_commit(&repo, &r["commits/".len()..]).await,
            (Method::GET, name) => repo.get_ref(name).await,
            (Method::POST, "blobs") => repo.create_blob(&body).await,
            (Method::POST, "trees") => repo.create_tree(&body).await,
            (Method::POST, "commits") => self.create_commit(&repo, &body).await,
            (Method::POST, "refs") => {
                let name = body["ref"].as_str().unwrap_or_default().to_string();
                self.update_ref(&repo, name.strip_prefix("refs/").unwrap_or("-"), &body, true)
                    .await
            }
            (Method::PATCH, name) => self.update_ref(&repo, name, &body, false).await,
            _ => refused(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    async fn get_commit(&self, repo: &Repo, sha: &str) -> Reply {
        match repo.commit_json(sha).await {
            Some(mut c) => {
                let verified = self.is_verified(sha);
                c["verification"] = json!({
                    "verified": verified,
                    "reason": if verified { "valid" } else { "unsigned" },
                    "signature": null,
                    "payload": null,
                });
                answer(StatusCode::OK, c)
            }
            None => refused(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    async fn create_commit(&self, repo: &Repo, body: &Value) -> Reply {
        let (Some(message), Some(tree)) = (body["message"].as_str(), body["tree"].as_str()) else {
            return unprocessable("Invalid request: message and tree are required");
        };
        if repo.object_type(tree).await.as_deref() != Some("tree") {
            return unprocessable("Tree SHA does not exist");
        }
        let parents: Vec<&str> = body["parents"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for p in &parents {
            if repo.object_type(p).await.as_deref() != Some("commit") {
                return unprocessable("Parent SHA does not exist or is not a commit object");
            }
        }
        let signs = body["author"].is_null() && body["committer"].is_null() && body["signature"].is_null();
        let person = |who: &Value| -> (String, String, Option<String>) {
            if who.is_null() {
                (APP_NAME.into(), APP_EMAIL.into(), None)
            } else {
                (
                    who["name"].as_str().unwrap_or_default().to_string(),
                    who["email"].as_str().unwrap_or_default().to_string(),
                    who["date"].as_str().map(str::to_string),
                )
            }
        };
        let author = person(&body["author"]);
        // GitHub: the committer defaults to the author.
        let committer = if body["committer"].is_null() {
            author.clone()
        } else {
            person(&body["committer"])
        };
        let mut args = vec!["commit-tree".to_string(), tree.to_string()];
        for p in &parents {
            args.extend(["-p".to_string(), p.to_string()]);
        }
        let mut env = vec![
            ("GIT_AUTHOR_NAME", author.0),
            ("GIT_AUTHOR_EMAIL", author.1),
            ("GIT_COMMITTER_NAME", committer.0),
            ("GIT_COMMITTER_EMAIL", committer.1),
        ];
        if let Some(d) = author.2 {
            env.push(("GIT_AUTHOR_DATE", d));
        }
        if let Some(d) = committer.2 {
            env.push(("GIT_COMMITTER_DATE", d));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Ok(sha) = repo.git_in(&args, &env, message.as_bytes()).await else {
            return unprocessable("Invalid commit");
        };
        if signs {
            self.inner.verified.lock().expect("verified").insert(sha.clone());
        }
        let mut c = repo.commit_json(&sha).await.unwrap_or_default();
        c["verification"] = json!({"verified": signs, "reason": if signs { "valid" } else { "unsigned" }});
        answer(StatusCode::CREATED, c)
    }

    /// PATCH (`create` false) or POST (`create` true) of `name` (e.g. `heads/main`).
    async fn update_ref(&self, repo: &Repo, name: &str, body: &Value, create: bool) -> Reply {
        let full = format!("refs/{name}");
        let Some(sha) = body["sha"].as_str() else {
            return unprocessable("Invalid request: sha is required");
        };
        if name.split('/').count() < 2 || repo.git(&["check-ref-format", &full]).await.is_err() {
            return unprocessable("Reference name is invalid");
        }
        if repo.object_type(sha).await.is_none() {
            return unprocessable("Object does not exist");
        }
        let race = {
            let mut race = self.inner.race.lock().expect("race");
            match &*race {
                Some(r) if name == format!("heads/{}", r.branch) => race.take(),
                _ => None,
            }
        };
        if let Some(r) = race {
            repo.concurrent_commit(&r).await;
        }
        let old = repo.git(&["rev-parse", "--verify", "-q", &full]).await.ok();
        let old = match (create, old) {
            (true, Some(_)) => return unprocessable("Reference already exists"),
            (false, None) => return unprocessable("Reference does not exist"),
            (true, None) => String::new(),
            (false, Some(old)) => {
                let force = body["force"].as_bool().unwrap_or(false);
                if !force && repo.git(&["merge-base", "--is-ancestor", &old, sha]).await.is_err() {
                    return unprocessable("Update is not a fast forward");
                }
                old
            }
        };
        // Compare-and-swap: a writer that moved the ref since it was read makes this fail.
        if repo.git(&["update-ref", &full, sha, &old]).await.is_err() {
            return unprocessable("Update is not a fast forward");
        }
        let status = if create { StatusCode::CREATED } else { StatusCode::OK };
        answer(status, repo.ref_json(&full, sha))
    }
}

/// One repository of the server.
struct Repo {
    dir: PathBuf,
    api: String,
    html: String,
}

impl Repo {
    async fn git(&self, args: &[&str]) -> Result<String, String> {
        self.git_in(args, &[], &[]).await
    }

    /// Runs git in the bare repository with `env` and `stdin`; its trimmed stdout, or stderr.
    async fn git_in(&self, args: &[&str], env: &[(&str, String)], stdin: &[u8]) -> Result<String, String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut input = child.stdin.take().expect("stdin");
        let stdin = stdin.to_vec();
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&stdin).await;
        });
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        let _ = writer.await;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    async fn object_type(&self, sha: &str) -> Option<String> {
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.git(&["cat-file", "-t", sha]).await.ok()
    }

    fn ref_json(&self, full: &str, sha: &str) -> Value {
        json!({
            "ref": full,
            "url": format!("{}/git/{full}", self.api),
            "object": {"sha": sha, "type": "commit", "url": format!("{}/git/commits/{sha}", self.api)},
        })
    }

    async fn get_ref(&self, name: &str) -> Reply {
        let full = format!("refs/{name}");
        match self.git(&["rev-parse", "--verify", "-q", &full]).await {
            Ok(sha) => answer(StatusCode::OK, self.ref_json(&full, &sha)),
            Err(_) => refused(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    /// A commit as GitHub's Git database API describes it (without `verification`).
    async fn commit_json(&self, sha: &str) -> Option<Value> {
        if self.object_type(sha).await.as_deref() != Some("commit") {
            return None;
        }
        let raw = self.git(&["cat-file", "commit", sha]).await.ok()?;
        let (headers, message) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let person = |key: &str| -> Value {
            let line = headers.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_default();
            let (name, rest) = line.split_once(" <").unwrap_or((line, ""));
            let (email, when) = rest.split_once("> ").unwrap_or((rest, ""));
            json!({"name": name, "email": email, "date": when})
        };
        let tree = headers
            .lines()
            .find_map(|l| l.strip_prefix("tree "))
            .unwrap_or_default();
        let parents: Vec<Value> = headers
            .lines()
            .filter_map(|l| l.strip_prefix("parent "))
            .map(|p| json!({"sha": p, "url": format!("{}/git/commits/{p}", self.api), "html_url": format!("{}/commit/{p}", self.html)}))
            .collect();
        Some(json!({
            "sha": sha,
            "url": format!("{}/git/commits/{sha}", self.api),
            "html_url": format!("{}/commit/{sha}", self.html),
            "author": person("author "),
            "committer": person("committer "),
            "message": message.trim_end_matches('\n'),
            "tree": {"sha": tree, "url": format!("{}/git/trees/{tree}", self.api)},
            "parents": parents,
        }))
    }

    async fn create_blob(&self, body: &Value) -> Reply {
        let Some(content) = body["content"].as_str() else {
            return unprocessable("Invalid request: content is required");
        };
        let bytes = match body["encoding"].as_str().unwrap_or("utf-8") {
            "utf-8" => content.as_bytes().to_vec(),
            "base64" => match base64::engine::general_purpose::STANDARD.decode(content.replace('\n', "")) {
                Ok(b) => b,
                Err(_) => return unprocessable("Invalid request: content is not valid Base64"),
            },
            _ => return unprocessable("Invalid request: encoding must be utf-8 or base64"),
        };
        match self.write_blob(&bytes).await {
            Ok(sha) => answer(
                StatusCode::CREATED,
                json!({"sha": sha, "url": format!("{}/git/blobs/{sha}", self.api)}),
            ),
            Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    }

    async fn write_blob(&self, bytes: &[u8]) -> Result<String, String> {
        self.git_in(&["hash-object", "-w", "--stdin"], &[], bytes).await
    }

    /// GitHub's create-a-tree: `tree` entries (nested paths) over `base_tree`; an entry with
    /// `sha: null` deletes the path; directories left empty disappear.
    async fn create_tree(&self, body: &Value) -> Reply {
        let Some(entries) = body["tree"].as_array() else {
            return unprocessable("Invalid request: tree is required");
        };
        // Every blob and gitlink of the new tree, by full path: (mode, type, sha).
        let mut files: BTreeMap<String, (String, String, String)> = BTreeMap::new();
        if let Some(base) = body["base_tree"].as_str() {
            if !matches!(self.object_type(base).await.as_deref(), Some("tree" | "commit")) {
                return unprocessable("base_tree is not a valid tree oid");
            }
            match self.list_tree(base, "").await {
                Ok(listed) => files.extend(listed),
                Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
            }
        }
        for e in entries {
            let (Some(path), Some(mode), Some(kind)) = (e["path"].as_str(), e["mode"].as_str(), e["type"].as_str())
            else {
                return unprocessable("Invalid tree info: path, mode and type are required");
            };
            if path.is_empty()
                || path
                    .split('/')
                    .any(|p| p.is_empty() || p == "." || p == ".." || p == ".git")
            {
                return unprocessable("Invalid tree info: bad path");
            }
            let expected = match mode {
                "100644" | "100755" | "120000" => "blob",
                "040000" => "tree",
                "160000" => "commit",
                _ => return unprocessable("Invalid tree info: bad mode"),
            };
            if kind != expected {
                return unprocessable("Invalid tree info: type does not match mode");
            }
            let prefix = format!("{path}/");
            files.retain(|p, _| p != path && !p.starts_with(&prefix));
            let sha = match (&e["sha"], e["content"].as_str()) {
                (Value::Null, None) if e.get("sha").is_some() => continue, // a deletion
                (Value::String(sha), None) => {
                    if kind != "commit" && self.object_type(sha).await.as_deref() != Some(kind) {
                        return unprocessable("Invalid tree info: the sha does not exist");
                    }
                    sha.clone()
                }
                (Value::Null, Some(content)) if kind == "blob" => match self.write_blob(content.as_bytes()).await {
                    Ok(sha) => sha,
                    Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
                },
                _ => return unprocessable("Invalid tree info: give sha or content"),
            };
            if kind == "tree" {
                match self.list_tree(&sha, &prefix).await {
                    Ok(listed) => files.extend(listed),
                    Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
                }
            } else {
                files.insert(path.to_string(), (mode.to_string(), kind.to_string(), sha));
            }
        }
        match self.make_tree(&files, "").await {
            Ok(sha) => answer(
                StatusCode::CREATED,
                json!({"sha": sha, "url": format!("{}/git/trees/{sha}", self.api), "truncated": false}),
            ),
            Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    }

    /// The blobs and gitlinks below `tree`, by path (prefixed with `prefix`).
    async fn list_tree(&self, tree: &str, prefix: &str) -> Result<BTreeMap<String, (String, String, String)>, String> {
        let listed = self.git(&["ls-tree", "-r", "-z", "--full-tree", tree]).await?;
        Ok(listed
            .split('\0')
            .filter_map(|l| {
                let (meta, path) = l.split_once('\t')?;
                let mut m = meta.split(' ');
                let (mode, kind, sha) = (m.next()?, m.next()?, m.next()?);
                Some((format!("{prefix}{path}"), (mode.into(), kind.into(), sha.into())))
            })
            .collect())
    }

    /// Writes the tree of `files` below `dir` (with subtrees) with `git mktree`.
    fn make_tree<'a>(
        &'a self,
        files: &'a BTreeMap<String, (String, String, String)>,
        dir: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut lines = Vec::new();
            let mut subdirs = Vec::new();
            for (path, (mode, kind, sha)) in files.range(dir.to_string()..) {
                let Some(rest) = path.strip_prefix(dir) else { break };
                match rest.split_once('/') {
                    Some((sub, _)) => {
                        if subdirs.last() != Some(&sub) {
                            subdirs.push(sub);
                        }
                    }
                    None => lines.push(format!("{mode} {kind} {sha}\t{rest}\0")),
                }
            }
            for sub in subdirs {
                let sha = self.make_tree(files, &format!("{dir}{sub}/")).await?;
                lines.push(format!("040000 tree {sha}\t{sub}\0"));
            }
            self.git_in(&["mktree", "-z"], &[], lines.concat().as_bytes()).await
        })
    }

    /// Another writer's commit on the branch (what [`GitHubApi::race_next_update`] asks for).
    async fn concurrent_commit(&self, race: &Race) {
        let head = self
            .git(&["rev-parse", &format!("refs/heads/{}", race.branch)])
            .await
            .expect("the raced branch exists");
        let blob = self.write_blob(race.content.as_bytes()).await.expect("blob");
        let mut files = self.list_tree(&head, "").await.expect("tree");
        files.insert(race.path.clone(), ("100644".into(), "blob".into(), blob));
        let tree = self.make_tree(&files, "").await.expect("mktree");
        let env = [
            ("GIT_AUTHOR_NAME", "Carol".to_string()),
            ("GIT_AUTHOR_EMAIL", "carol@example.com".to_string()),
            ("GIT_COMMITTER_NAME", "Carol".to_string()),
            ("GIT_COMMITTER_EMAIL", "carol@example.com".to_string()),
        ];
        let commit = self
            .git_in(&["commit-tree", &tree, "-p", &head], &env, b"a concurrent change")
            .await
            .expect("commit-tree");
        self.git(&["update-ref", &format!("refs/heads/{}", race.branch), &commit, &head])
            .await
            .expect("update-ref");
    }
}
