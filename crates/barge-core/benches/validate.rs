//! Validation speed on a large project: 1,000 Stages (a chain of 10 pipelines × 100 stages,
//! each with a 4-step promotion template and expressions), 10 Warehouses, a PromotionTask.
//!
//! Prints the time to load + validate everything, against the physical floor measured in the
//! same run: saphyr-parser merely reading the same bytes as YAML events (no tree, no model).
//! Run: `cargo bench -p barge-core --bench validate`.

use std::time::{Duration, Instant};

fn project(stages: usize) -> String {
    let mut s = String::from("apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: bench\n");
    s.push_str("---\napiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask\nmetadata:\n  name: promote\n  namespace: bench\nspec:\n  vars:\n    - name: path\n  steps:\n    - uses: git-clone\n      config:\n        repoURL: https://git.example.com/config.git\n        checkout:\n          - branch: main\n            path: ./src\n    - uses: kustomize-set-image\n      as: update\n      config:\n        path: ./src/${{ vars.path }}\n    - uses: git-commit\n      config:\n        path: ./src\n        message: ${{ task.outputs.update.commitMessage }}\n    - uses: git-push\n      config:\n        path: ./src\n");
    let chains = 10;
    for w in 0..chains {
        s.push_str(&format!("---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: app{w}\n  namespace: bench\nspec:\n  interval: 5m\n  subscriptions:\n    - image:\n        repoURL: ghcr.io/example/app{w}\n        constraint: \">=1.0.0 <2.0.0 || ^3.1\"\n        allowTagsRegexes: ['^v?[0-9]+\\.[0-9]+\\.[0-9]+$']\n"));
    }
    for i in 0..stages {
        let w = i % chains;
        let sources = if i < chains {
            "direct: true".to_string()
        } else {
            format!("stages:\n          - s{}\n        requiredSoakTime: 1h30m", i - chains)
        };
        s.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s{i}\n  namespace: bench\nspec:\n  requestedFreight:\n    - origin:\n        kind: Warehouse\n        name: app{w}\n      sources:\n        {sources}\n  promotionTemplate:\n    spec:\n      vars:\n        - name: repo\n          value: https://git.example.com/config.git\n      steps:\n        - uses: git-clone\n          config:\n            repoURL: ${{{{ vars.repo }}}}\n            checkout:\n              - branch: main\n                path: ./src\n        - uses: yaml-update\n          as: update\n          config:\n            path: ./src/s{i}/values.yaml\n            updates:\n              - key: image.tag\n                value: ${{{{ imageFrom('ghcr.io/example/app{w}').Tag }}}}\n        - uses: git-commit\n          as: commit\n          config:\n            path: ./src\n            message: ${{{{ outputs.update.commitMessage }}}}\n        - task:\n            name: promote\n          vars:\n            - name: path\n              value: s{i}\n"
        ));
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let stages = 1000;
    let text = project(stages);
    let runs = 15;
    let floor = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let n = saphyr_parser::Parser::new_from_str(&text).filter(|e| e.is_ok()).count();
                std::hint::black_box(n);
                t.elapsed()
            })
            .collect(),
    );
    let mut last = None;
    let full = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let mut c = barge_core::Catalog::default();
                c.load_text("bench.yaml", &text);
                barge_core::validate::validate(&mut c);
                let e = t.elapsed();
                last = Some(c);
                e
            })
            .collect(),
    );
    let c = last.expect("ran");
    assert_eq!(c.documents, stages + 12, "all resources loaded");
    assert_eq!(c.errors(), 0, "{:?}", c.diagnostics.first());
    println!(
        "validate: {stages} stages, {} KiB of YAML, median of {runs} runs",
        text.len() / 1024
    );
    println!("  YAML event parse only (floor): {:>8.2} ms", floor.as_secs_f64() * 1e3);
    println!("  barge load + validate:         {:>8.2} ms", full.as_secs_f64() * 1e3);
    println!(
        "  ratio to floor:                {:>8.1}x",
        full.as_secs_f64() / floor.as_secs_f64()
    );
}
