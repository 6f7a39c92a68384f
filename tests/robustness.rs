//! No input makes the loader panic: property tests feed mutated real definitions (corpus files,
//! the examples) and arbitrary text to the loader and validator, and check that what comes back
//! is sane: positions inside the input, results identical on a second run.

mod support;

use barge_core::Catalog;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::LazyLock;

/// Real files to mutate: the repository's own examples, pipelines and diagnostic fixtures
/// (definitions and AnalysisTemplates), and the corpus's files when it is there. The suite
/// stands on the repository's own files; the corpus adds variety, not a precondition.
static SEEDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let root = support::root();
    let mut dirs = vec![
        root.join("examples"),
        root.join("pipelines"),
        root.join("stages"),
        root.join("tests/fixtures"),
    ];
    let corpus = std::env::var_os("BARGE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"));
    if corpus.join("SOURCES.tsv").is_file() {
        dirs.push(corpus);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        files.extend(barge_source::yaml_files(dir).expect("list"));
    }
    let texts: Vec<String> = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
    assert!(texts.len() > 50, "seed files: {}", texts.len());
    texts
});

fn load(text: &str) -> Catalog {
    let mut c = Catalog::default();
    c.load_text("fuzz.yaml", text);
    barge_core::validate::validate(&mut c);
    c
}

fn check(text: &str) {
    let c = load(text);
    // Lines as YAML counts them: a lone CR breaks a line too (YAML 1.2's b-break, as editors
    // show it); counting LFs alone put a diagnostic after a lone CR "beyond" the input.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() as u32;
    for d in &c.diagnostics {
        assert!(
            d.line <= lines + 1,
            "line {} beyond input ({lines} lines): {d:?}",
            d.line
        );
        assert!(!d.message.is_empty());
    }
    let again = load(text);
    assert_eq!(c.diagnostics, again.diagnostics, "validation is deterministic");
    assert_eq!(c.documents, again.documents);
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Duplicate { at: usize, len: usize },
    SwapLines { a: usize, b: usize },
    Reindent { line: usize, spaces: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragments = prop::sample::select(vec![
        ":",
        "- ",
        "  ",
        "\n",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "<<: *a\n",
        "'",
        "\"",
        "#",
        "---\n",
        "${{ ",
        " }}",
        "${% ",
        "{{ .Values.x }}",
        "\t",
        "!!str ",
        "? ",
        "|\n",
        ">-\n",
        "~",
        "null",
        "1.10",
        "\u{feff}",
        "é",
        "\r\n",
        "${VAR}",
        "kind: Stage\n",
        "apiVersion: kargo.akuity.io/v1alpha1\n",
        "kind: AnalysisTemplate\n",
        "successCondition: result[0] >= {{args.x}}\n",
        "${{ ((( ",
        " ? 1 : ",
        " ?? ",
        "outputs['a'].",
        "{{args.",
        "\u{0}",
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), prop::collection::vec(fragments, 1..4))
            .prop_map(|(at, f)| Mutation::Insert { at, text: f.concat() }),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (any::<usize>(), 0usize..9).prop_map(|(line, spaces)| Mutation::Reindent { line, spaces }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, m: &Mutation) -> String {
    match m {
        Mutation::Delete { at, len } => {
            let a = boundary(&s, *at);
            let b = boundary(&s, a + len).max(a);
            s.replace_range(a..b, "");
        }
        Mutation::Insert { at, text } => {
            let a = boundary(&s, *at);
            s.insert_str(a, text);
        }
        Mutation::Duplicate { at, len } => {
            let a = boundary(&s, *at);
            let b = boundary(&s, a + len).max(a);
            let piece = s[a..b].to_string();
            s.insert_str(b, &piece);
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = s.split('\n').collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            s = lines.join("\n");
        }
        Mutation::Reindent { line, spaces } => {
            let lines: Vec<String> = s
                .split('\n')
                .enumerate()
                .map(|(i, l)| {
                    if i == line % (s.matches('\n').count() + 1) {
                        format!("{}{}", " ".repeat(*spaces), l.trim_start())
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            s = lines.join("\n");
        }
        Mutation::Truncate { at } => {
            let a = boundary(&s, *at);
            s.truncate(a);
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn mutated_real_definitions_never_panic(seed in any::<prop::sample::Index>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut text = SEEDS[seed.index(SEEDS.len())].clone();
        for m in &mutations {
            text = apply(text, m);
        }
        check(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check(&text);
    }

    #[test]
    fn yaml_shaped_noise_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "a", "kind", "spec", ":", " ", "  ", "\n", "- ", "[", "]", "{", "}", ",", "&x", "*x", "<<", "'", "\"", "|", ">", "#", "---", "...", "?", "!", "%YAML 1.2\n", "${{", "}}", "1", "-1.5e3", "true",
    ]), 0..120)) {
        check(&parts.concat());
    }
}

/// Expression-shaped noise: expr-lang's tokens, Kargo's functions and variables, in any order.
fn expression() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                "(",
                ")",
                "[",
                "]",
                "{",
                "}",
                ",",
                ":",
                "?",
                "??",
                "?.",
                ".",
                "+",
                "-",
                "*",
                "/",
                "%",
                "**",
                "==",
                "!=",
                "<",
                ">=",
                "&&",
                "||",
                "!",
                "not",
                "in",
                "matches",
                "contains",
                "..",
                "|",
                ";",
                "let x = ",
                "if",
                "else",
                "#",
                "'a'",
                "\"b\"",
                "`c`",
                "'",
                "\"",
                "1",
                "1.5",
                "0x1F",
                "1e400",
                "-9223372036854775808",
                "nil",
                "true",
                "vars",
                "ctx",
                "outputs",
                "result",
                "imageFrom(",
                "quote(",
                "semverParse(",
                "now()",
                "len(",
                "map(",
                "filter(",
                "toJSON(",
                "fromJSON(",
                "string(",
                "int(",
                "secret(",
                "vars.x",
                "ctx.stage",
                "outputs['a'].b",
                "result[0]",
                "/* ",
                " */",
                "// ",
                "\n",
                " ",
            ])
            .prop_map(str::to_string),
            "\\PC{0,6}",
        ],
        0..80,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, failure_persistence: None, .. ProptestConfig::default() })]

    /// Every way barge compiles and evaluates expressions: validation's parse, promotion
    /// rendering, step conditions, and analysis conditions (after `{{args.x}}` substitution,
    /// which can put any text there). Any result is fine; a panic, an abort or a slow case
    /// is not.
    #[test]
    fn expressions_never_panic_abort_or_stall(body in expression(), nested in 0usize..3) {
        let body = format!("{}{body}{}", "(".repeat(nested * 40), ")".repeat(nested * 40));
        let started = std::time::Instant::now();
        let _ = barge_core::expr::parse(&body);
        let data = barge_core::eval::Data { now: "2026-01-01T00:00:00Z".into(), ..Default::default() };
        let scope = barge_core::eval::Scope::default();
        let _ = barge_core::eval::render_string(&format!("${{{{ {body} }}}}"), &data, &scope);
        let _ = barge_core::eval::condition(&body, &data, &scope);
        let _ = barge_core::analysis::evaluate(Some(&body), None, &barge_core::analysis::MeasuredValue::Vector(vec![0.5]));
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?} for {body:?}", started.elapsed());
    }
}

#[test]
fn hostile_inputs_get_diagnostics_not_crashes() {
    // A syntax error after lone CRs (what a mutation run found): its line counts them.
    check("a: 1\rb: 2\rc: [\r\r");
    // Deep nesting, an alias bomb, a long line and a huge flat document.
    let deep = format!(
        "kind: Stage\napiVersion: kargo.akuity.io/v1alpha1\nspec: {}{}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let c = load(&deep);
    assert!(
        c.diagnostics
            .iter()
            .any(|d| d.code == barge_core::Code::YamlSyntax && d.message.contains("nests")),
        "{:?}",
        c.diagnostics
    );

    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let c = load(&bomb);
    assert!(
        c.diagnostics.iter().any(|d| d.code == barge_core::Code::YamlSyntax),
        "{:?}",
        c.diagnostics
    );

    check(&format!(
        "kind: Warehouse\nmetadata: {{name: {}}}\n",
        "x".repeat(1_000_000)
    ));
    let flat: String = (0..50_000).map(|i| format!("k{i}: v\n")).collect();
    check(&flat);
}

/// A Stage whose step config holds `expression` and an AnalysisTemplate whose success
/// condition is `condition`.
fn definitions_with(expression: &str, condition: &str) -> String {
    format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: w, namespace: p}}
spec:
  subscriptions: [{{image: {{repoURL: ghcr.io/acme/web}}}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: s, namespace: p}}
spec:
  requestedFreight: [{{origin: {{kind: Warehouse, name: w}}, sources: {{direct: true}}}}]
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: "${{{{ {expression} }}}}"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: t, namespace: p}}
spec:
  metrics:
  - name: m
    successCondition: "{condition}"
    provider: {{web: {{url: "http://localhost/x"}}}}
"#
    )
}

#[test]
fn deeply_nested_expressions_get_a_diagnostic_not_an_abort() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("deep.yaml");
    for (construct, deep) in [
        ("parentheses", format!("{}1{}", "(".repeat(3_000), ")".repeat(3_000))),
        ("brackets", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
        ("ternaries", format!("{}1", "true ? 1 : ".repeat(3_000))),
        ("calls", format!("{}1{}", "string(".repeat(1_000), ")".repeat(1_000))),
    ] {
        std::fs::write(&file, definitions_with(&deep, &format!("result == ({deep})"))).expect("write");
        let report = support::validate_json(&[&file]);
        let deep_ones: Vec<&serde_json::Value> = report["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter(|d| {
                d["code"] == "invalid-expression"
                    && d["message"].as_str().unwrap_or_default().contains("nests more than")
            })
            .collect();
        // The step's expression (line 17, where its string starts) and the condition (line 25).
        let positions: Vec<(u64, u64)> = deep_ones
            .iter()
            .map(|d| (d["line"].as_u64().unwrap(), d["column"].as_u64().unwrap()))
            .collect();
        assert_eq!(positions, [(17, 20), (25, 23)], "{construct}: {deep_ones:?}");
        assert!(
            deep_ones.iter().all(|d| d["message"].as_str().unwrap().len() < 400),
            "{construct}: messages quote an excerpt, not the whole expression"
        );
        for verb in ["plan", "discover"] {
            let out = support::run(&[verb, file.to_str().expect("utf-8")]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{construct}: barge {verb}: {}",
                support::stderr(&out)
            );
            assert!(
                support::stderr(&out).contains("nests more than"),
                "{construct}: barge {verb}: {}",
                support::stderr(&out)
            );
        }
    }
}

/// Runs barge with `args`, killed if it has not ended within `limit`: a hang is a failure
/// with a message, not a stuck test run.
fn run_within(limit: std::time::Duration, args: &[&str]) -> std::process::Output {
    let mut child = support::barge()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("barge runs");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("barge {args:?} hung: {}", support::stderr(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

const PROJECT: &str = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: p}\n";

fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success());
}

#[test]
fn only_regular_files_are_read_and_no_more_than_16_mib_of_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defs = dir.path().join("defs");
    std::fs::create_dir(&defs).expect("mkdir");
    std::fs::write(defs.join("project.yaml"), PROJECT).expect("write");
    mkfifo(&defs.join("pipe.yaml"));
    let limit = std::time::Duration::from_secs(30);
    // In a directory, a FIFO is skipped with a warning; the rest loads.
    let out = run_within(limit, &["validate", "-o", "json", defs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["resources"], 1);
    let d = &report["diagnostics"][0];
    assert_eq!(
        (d["code"].as_str(), d["severity"].as_str()),
        (Some("not-yaml"), Some("warning")),
        "{report}"
    );
    assert!(d["file"].as_str().unwrap().ends_with("pipe.yaml"), "{report}");
    assert!(d["message"].as_str().unwrap().contains("FIFO"), "{report}");
    // Named, a FIFO or an endless device is an error, at once.
    for named in [defs.join("pipe.yaml").to_str().unwrap(), "/dev/urandom"] {
        let out = run_within(limit, &["validate", named]);
        assert_eq!(out.status.code(), Some(1), "{named}: {}", support::stderr(&out));
        assert!(
            support::stdout(&out).contains("not a regular file"),
            "{named}: {}",
            support::stdout(&out)
        );
    }
    // A file over the cap is an error naming the file and the cap.
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, format!("{PROJECT}# {}\n", "x".repeat(16 << 20))).expect("write");
    let report = support::validate_json(&[&big]);
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "not-yaml", "{report}");
    assert!(d["file"].as_str().unwrap().ends_with("big.yaml"));
    assert!(
        d["message"].as_str().unwrap().contains("larger than 16 MiB"),
        "{report}"
    );
}

#[test]
fn a_fifo_in_the_definitions_stops_neither_reloads_nor_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defs = dir.path().join("defs");
    std::fs::create_dir(&defs).expect("mkdir");
    std::fs::write(defs.join("p.yaml"), PROJECT).expect("write");
    let log = dir.path().join("serve.log");
    let db = format!("sqlite://{}", dir.path().join("barge.db").display());
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut daemon = Killed(
        support::barge()
            .args([
                "serve",
                defs.to_str().unwrap(),
                "--db",
                &db,
                "--reload-interval",
                "100ms",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("barge serve"),
    );
    let reloads = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("definitions reloaded")
            .count()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let project = |name: &str| PROJECT.replace("name: p", &format!("name: {name}"));
    // The daemon is up when a change reloads; until then, each write is another change.
    let writes = std::cell::Cell::new(0);
    wait_for("the first reload", &|| {
        writes.set(writes.get() + 1);
        std::fs::write(
            defs.join("q.yaml"),
            format!("{}#{}\n", project("q"), "x".repeat(writes.get())),
        )
        .expect("write");
        std::thread::sleep(std::time::Duration::from_millis(300));
        reloads() > 0
    });
    let before = reloads();
    // A FIFO nobody writes to appears with a change: the change is still picked up.
    mkfifo(&defs.join("pipe.yaml"));
    std::fs::write(defs.join("r.yaml"), project("r")).expect("write");
    wait_for("the reload beside the FIFO", &|| reloads() > before);
    let pid = daemon.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while daemon.0.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "the daemon ignored SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn unreadable_bytes_and_stray_documents_are_pointed_at() {
    let dir = tempfile::tempdir().expect("tempdir");
    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"kind: Project\nmetadata: {name: caf\xe9}\n").expect("write");
    let report = support::validate_json(&[&latin1]);
    let d = &report["diagnostics"][0];
    assert_eq!(
        (d["code"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("not-yaml"), Some(2), Some(21)),
        "{report}"
    );
    // A list at the top passed as "ok: 0 resources"; it is a warning now.
    let list = dir.path().join("list.yaml");
    std::fs::write(&list, format!("- {}", PROJECT.replace('\n', "\n  "))).expect("write");
    let out = support::run(&["validate", list.to_str().unwrap()]);
    assert!(
        support::stdout(&out).contains("warning[not-a-resource]"),
        "{}",
        support::stdout(&out)
    );
    assert!(
        support::stdout(&out).contains("0 resources, 0 errors, 1 warning"),
        "{}",
        support::stdout(&out)
    );
}

/// YAML bombs: nested aliases (sequences, mappings) of a few hundred bytes, and a long
/// string aliased thousands of times.
fn bombs() -> Vec<(&'static str, String)> {
    let mut sequences = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    let mut mappings = String::from("a0: &a0 {k0: xxxxxxxx, k1: xxxxxxxx, k2: xxxxxxxx, k3: xxxxxxxx}\n");
    for i in 1..14 {
        let p = i - 1;
        if i < 10 {
            sequences.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{p}"); 10].join(", ")));
        }
        let entries: Vec<String> = (0..4).map(|k| format!("k{k}: *a{p}")).collect();
        mappings.push_str(&format!("a{i}: &a{i} {{{}}}\n", entries.join(", ")));
    }
    let strings = format!("a: &a {}\nb: [{}]\n", "x".repeat(1 << 20), vec!["*a"; 2_000].join(", "));
    vec![("sequences", sequences), ("mappings", mappings), ("strings", strings)]
}

#[test]
fn yaml_bombs_are_refused_in_less_than_64_mb() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bomb) in bombs() {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &bomb).expect("write");
        // GNU time reports the peak resident memory of exactly this process (wait4), however
        // many other tests run barge meanwhile.
        let peak_file = dir.path().join("peak");
        let out = std::process::Command::new("/usr/bin/time")
            .args(["-o", peak_file.to_str().unwrap(), "-f", "%M"])
            .arg(env!("CARGO_BIN_EXE_barge"))
            .args(["validate", "-o", "json", file.to_str().unwrap()])
            .output()
            .expect("/usr/bin/time (GNU time; scripts/test installs it)");
        assert_eq!(out.status.code(), Some(1), "{name}: {}", support::stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let message = report["diagnostics"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains("alias"), "{name} ({} bytes): {report}", bomb.len());
        let peak = std::fs::read_to_string(&peak_file).expect("peak");
        let peak_kib: u64 = peak.lines().last().unwrap_or_default().trim().parse().expect("KiB");
        assert!(
            peak_kib < 64 << 10,
            "{name} ({} bytes): peak {peak_kib} KiB: {message}",
            bomb.len()
        );
    }
}
