//! `${{ … }}` and `${% … %}` expressions in step configs and vars, as Kargo evaluates them with
//! expr-lang. Here they are found and parsed; [`crate::eval`] evaluates them.

/// One expression found in a string: its body and its character offset in the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub body: &'a str,
    pub offset: usize,
}

/// An opening `${{` / `${%` without its closing delimiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unclosed {
    pub offset: usize,
    pub close: &'static str,
}

/// Finds every expression in `s`.
pub fn find(s: &str) -> Result<Vec<Found<'_>>, Unclosed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(rel) = s[pos..].find("${") {
        let start = pos + rel;
        let close = match s[start + 2..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                pos = start + 2;
                continue;
            }
        };
        let body_start = start + 3;
        let Some(end) = s[body_start..].find(close) else {
            return Err(Unclosed {
                offset: s[..start].chars().count(),
                close,
            });
        };
        out.push(Found {
            body: &s[body_start..body_start + end],
            offset: s[..start].chars().count(),
        });
        pos = body_start + end + close.len();
    }
    Ok(out)
}

/// Parses an expression body with expr-lang; the error is its first line.
pub fn parse(body: &str) -> Result<(), String> {
    if body.trim().is_empty() {
        return Err("the expression is empty".to_string());
    }
    compile(body).map(|_| ())
}

/// How deep an expression may nest: brackets, calls, ternaries, `??`, `**` and `if`, each
/// counted with the operators beside it. expr-lang builds and evaluates its tree recursively,
/// and a few hundred levels overflow a 2 MiB thread stack (an abort, not an error), so every
/// expression barge compiles is measured first. Kargo expressions nest a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// Compiles an expression with expr-lang after checking its depth (see [`MAX_DEPTH`]); the
/// one way barge compiles expressions, so no caller can hand expr-lang a stack overflow.
pub fn compile(body: &str) -> Result<expr::Program, String> {
    check_depth(body)?;
    expr::compile(body).map_err(|e| one_line(&e))
}

/// An upper bound of the depth of the tree expr-lang would build, without building it.
///
/// Each open bracket is a frame. Within a frame, every operator of the current argument
/// (between commas) may add a level: left-associative chains (`a + b + c`, `a.b.c`) nest to
/// the left, ternaries, `??`, `**` and `if` to the right. The bound is the sum over the open
/// frames of one plus their operators. String literals and comments are skipped.
fn check_depth(body: &str) -> Result<(), String> {
    let mut frames: Vec<usize> = vec![0];
    let mut depth = 1;
    let mut chars = body.chars().enumerate().peekable();
    while let Some((at, c)) = chars.next() {
        let mut operator = false;
        match c {
            '\'' | '"' | '`' => {
                while let Some((_, s)) = chars.next() {
                    if s == '\\' && c != '`' {
                        chars.next();
                    } else if s == c {
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|&(_, n)| n == '/') => {
                while chars.next_if(|&(_, n)| n != '\n').is_some() {}
            }
            '/' if chars.peek().is_some_and(|&(_, n)| n == '*') => {
                chars.next();
                let mut star = false;
                for (_, n) in chars.by_ref() {
                    if star && n == '/' {
                        break;
                    }
                    star = n == '*';
                }
            }
            '(' | '[' | '{' => {
                frames.push(0);
                depth += 1;
            }
            ')' | ']' | '}' => {
                if frames.len() > 1 {
                    depth -= 1 + frames.pop().unwrap_or(0);
                }
            }
            ',' | ';' => {
                let last = frames.last_mut().expect("the outermost frame is never popped");
                depth -= *last;
                *last = 0;
            }
            c if c.is_ascii_digit() => {
                while chars
                    .next_if(|&(_, n)| n.is_ascii_alphanumeric() || n == '_' || n == '.')
                    .is_some()
                {}
            }
            c if c.is_alphabetic() || matches!(c, '_' | '$' | '#') => {
                let mut word = String::from(c);
                while let Some((_, n)) = chars.next_if(|&(_, n)| n.is_alphanumeric() || n == '_') {
                    word.push(n);
                }
                operator = matches!(
                    word.as_str(),
                    "if" | "and" | "or" | "not" | "in" | "contains" | "startsWith" | "endsWith" | "matches"
                );
            }
            c if c.is_whitespace() || c == ':' => {}
            _ => {
                // `==`, `&&`, `?.`: one operator.
                while chars.next_if(|&(_, n)| "+-*/%^<>=!&|?.~".contains(n)).is_some() {}
                operator = true;
            }
        }
        if operator {
            *frames.last_mut().expect("the outermost frame is never popped") += 1;
            depth += 1;
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "the expression nests more than {MAX_DEPTH} levels deep (at character {}): brackets, calls and operators nest",
                at + 1
            ));
        }
    }
    Ok(())
}

/// An expression as a message quotes it: trimmed, and cut after 80 characters (a hostile one
/// can be megabytes long).
pub fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_string(),
    }
}

/// An expr-lang error (often several lines with a caret drawing) as one line for a diagnostic.
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Step aliases an expression reads outputs from: `outputs.alias`, `outputs['alias']`, and
/// (with `task = true`) `task.outputs…`. Returns `(alias, is_task_scope)`.
pub fn output_references(body: &str) -> Vec<(String, bool)> {
    use regex::Regex;
    use std::sync::LazyLock;
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(task\s*\.\s*)?\boutputs\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:'([^']+)'|"([^"]+)")\s*\])"#)
            .expect("valid regex")
    });
    let mut out = Vec::new();
    for c in RE.captures_iter(body) {
        // `ctx.outputs`, `x.outputs` are not step outputs.
        let m = c.get(0).expect("match");
        if c.get(1).is_none() {
            let before = body[..m.start()].trim_end();
            if before.ends_with('.') {
                continue;
            }
        }
        let alias = c.get(2).or(c.get(3)).or(c.get(4)).map(|x| x.as_str().to_string());
        if let Some(alias) = alias {
            out.push((alias, c.get(1).is_some()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_delimiters() {
        let f = find("a ${{ vars.x }} b ${% y %} ${ not } $x").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].body, " vars.x ");
        assert_eq!(f[0].offset, 2);
        assert_eq!(f[1].body, " y ");
        assert!(find("${{ oops").is_err());
    }

    #[test]
    fn parses_kargo_expressions() {
        for ok in [
            "imageFrom('ghcr.io/x/y').Tag",
            "outputs['update-image'].commitMessage",
            "quote(vars.x ?? 'default')",
            "let t = now(); t.Unix()",
            "ctx.stage == 'prod' ? 'a' : 'b'",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
        assert!(parse("vars.x ==").is_err());
        // Map literals with expression values (vendor/expr-lang fixes the upstream panic).
        assert!(parse("quote({\"ref\": vars.branch, \"n\": [1, vars.x]})").is_ok());
        assert!(parse("   ").is_err());
    }

    /// Nesting constructs expr-lang recurses over, `n` levels deep.
    fn nested(construct: &str, n: usize) -> String {
        match construct {
            "parentheses" => format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            "brackets" => format!("{}{}", "[".repeat(n), "]".repeat(n)),
            "maps" => format!("{}1{}", "{a: ".repeat(n), "}".repeat(n)),
            "calls" => format!("{}1{}", "string(".repeat(n), ")".repeat(n)),
            "ternaries" => format!("{}1", "true ? 1 : ".repeat(n)),
            "defaults" => format!("{}1", "nil ?? ".repeat(n)),
            "powers" => format!("1{}", " ** 1".repeat(n)),
            "sums" => format!("1{}", " + 1".repeat(n)),
            "members" => format!("{{}}{}", "?.a".repeat(n)),
            "ifs" => format!("{}{{1}}", "if true { 1 } else ".repeat(n)),
            _ => unreachable!("{construct}"),
        }
    }

    const CONSTRUCTS: [&str; 10] = [
        "parentheses",
        "brackets",
        "maps",
        "calls",
        "ternaries",
        "defaults",
        "powers",
        "sums",
        "members",
        "ifs",
    ];

    #[test]
    fn deep_expressions_are_refused_with_a_position() {
        for construct in CONSTRUCTS {
            for n in [MAX_DEPTH + 1, 3_000, 10_000] {
                let e = parse(&nested(construct, n)).expect_err(construct);
                assert!(
                    e.contains(&format!("nests more than {MAX_DEPTH} levels")),
                    "{construct}: {e}"
                );
                assert!(e.contains("at character "), "{construct}: {e}");
            }
        }
        // Brackets inside string literals and comments are text, not nesting.
        let quoted = format!(
            "'{}' + \"{}\" + `{}` /* {} */",
            "(".repeat(500),
            "[".repeat(500),
            "{".repeat(500),
            "(".repeat(500)
        );
        assert!(parse(&quoted).is_ok(), "{:?}", parse(&quoted));
        // Siblings do not add up: a long list or call is flat.
        let list = format!("[{}]", vec!["a.b + 1"; 1_000].join(", "));
        assert!(parse(&list).is_ok(), "{:?}", parse(&list));
    }

    #[test]
    fn the_deepest_accepted_expressions_evaluate_on_a_small_stack() {
        // The limit is only a limit if what passes it runs: the deepest accepted expression
        // of every construct, compiled and evaluated on a 2 MiB thread (Rust's default for
        // spawned threads and tokio's workers), in whatever build runs the tests.
        for construct in CONSTRUCTS {
            let deepest = (1..=MAX_DEPTH)
                .rev()
                .map(|n| nested(construct, n))
                .find(|e| parse(e).is_ok())
                .unwrap_or_else(|| panic!("{construct}: nothing parses"));
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    let program = compile(&deepest).expect("compiles");
                    expr::Environment::new()
                        .run(&program, &expr::Context::default())
                        .map(drop)
                        .expect("evaluates");
                })
                .expect("thread")
                .join()
                .unwrap_or_else(|_| panic!("{construct}"));
        }
    }

    #[test]
    fn finds_output_references() {
        let refs =
            output_references("outputs.commit.commit + outputs['update-image'].x + task.outputs.a.b + ctx.outputs.z");
        assert_eq!(
            refs,
            vec![
                ("commit".to_string(), false),
                ("update-image".to_string(), false),
                ("a".to_string(), true)
            ]
        );
    }
}
