//! The pipeline graph's layout: a layered drawing of a DAG (Sugiyama's first step, longest
//! path layering), computed on the server so the page needs no layout script. Each node sits
//! in the layer one past its deepest predecessor, so every edge points to a later layer; in a
//! layer nodes keep the order they were given in (the engine's promotion order), which keeps
//! a fan-out's branches in the order their definitions list them.

/// Where each node goes: `layers[l]` lists the indices of the nodes in layer `l`, in input
/// order. Edges are `(from, to)` indices; ones naming a node that does not exist are ignored.
/// Nodes on a cycle (which the definitions' validation refuses, but a drawing must not hang
/// on one) go to one layer after all the others.
pub fn layers(nodes: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let edges: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| a < nodes && b < nodes && a != b)
        .collect();
    let mut waiting_for = vec![0usize; nodes];
    for &(_, to) in &edges {
        waiting_for[to] += 1;
    }
    let mut layer_of: Vec<Option<usize>> = vec![None; nodes];
    // Kahn's topological order; a node's layer is fixed once its last predecessor is placed.
    let mut ready: std::collections::VecDeque<usize> = (0..nodes).filter(|&n| waiting_for[n] == 0).collect();
    for &n in &ready {
        layer_of[n] = Some(0);
    }
    while let Some(n) = ready.pop_front() {
        let here = layer_of[n].unwrap_or(0);
        for &(_, to) in edges.iter().filter(|(from, _)| *from == n) {
            waiting_for[to] -= 1;
            if waiting_for[to] == 0 {
                let deepest = edges
                    .iter()
                    .filter(|(_, t)| *t == to)
                    .filter_map(|(from, _)| layer_of[*from])
                    .max()
                    .unwrap_or(here);
                layer_of[to] = Some(deepest + 1);
                ready.push_back(to);
            }
        }
    }
    let placed = layer_of.iter().flatten().max().map_or(0, |m| m + 1);
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); placed];
    let mut cyclic = Vec::new();
    for (n, layer) in layer_of.iter().enumerate() {
        match layer {
            Some(l) => out[*l].push(n),
            None => cyclic.push(n),
        }
    }
    if !cyclic.is_empty() {
        out.push(cyclic);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::layers;

    #[test]
    fn a_chain_is_one_node_per_layer() {
        // warehouse -> dev -> staging -> prod
        assert_eq!(
            layers(4, &[(0, 1), (1, 2), (2, 3)]),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
    }

    #[test]
    fn a_fan_out_puts_the_branches_side_by_side_in_input_order() {
        // warehouse -> dev -> {prod-eu, prod-us, prod-ap}
        let got = layers(5, &[(0, 1), (1, 2), (1, 3), (1, 4)]);
        assert_eq!(got, vec![vec![0], vec![1], vec![2, 3, 4]]);
    }

    #[test]
    fn a_fan_in_waits_for_its_deepest_predecessor() {
        // warehouse -> dev -> qa -> prod and dev -> prod: prod is after qa, not beside it.
        let got = layers(4, &[(0, 1), (1, 2), (2, 3), (1, 3)]);
        assert_eq!(got, vec![vec![0], vec![1], vec![2], vec![3]]);
        // Two warehouses feeding one Stage, and two regions joining into a global Stage.
        let got = layers(6, &[(0, 2), (1, 2), (2, 3), (2, 4), (3, 5), (4, 5)]);
        assert_eq!(got, vec![vec![0, 1], vec![2], vec![3, 4], vec![5]]);
    }

    #[test]
    fn every_edge_points_to_a_later_layer() {
        let edges = [(0, 3), (3, 1), (1, 2), (0, 2), (4, 2)];
        let got = layers(5, &edges);
        let layer = |n: usize| got.iter().position(|l| l.contains(&n)).unwrap();
        for (a, b) in edges {
            assert!(layer(a) < layer(b), "{a}->{b} in {got:?}");
        }
    }

    #[test]
    fn a_cycle_and_bad_edges_neither_hang_nor_panic() {
        let got = layers(3, &[(0, 1), (1, 2), (2, 1), (7, 0), (0, 0)]);
        assert_eq!(got, vec![vec![0], vec![1, 2]]);
        assert!(layers(0, &[]).is_empty());
    }
}
