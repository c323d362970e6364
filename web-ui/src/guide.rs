//! The learner's guide: each mechanism the page shows, in plain words, linked from the
//! events that show it.

/// One mechanism explained.
pub struct Topic {
    /// The anchor (`#guide-…`) events link to.
    pub id: &'static str,
    pub title: &'static str,
    /// Paragraphs.
    pub text: &'static [&'static str],
}

pub const TOPICS: &[Topic] = &[
    Topic {
        id: "partitioning",
        title: "Partitioning: why a task goes where it goes",
        text: &[
            "A job is cut into tasks (for a picture, one tile each). Nobody hands them out: every member works out, on its own, who should compute each task.",
            "It does so by giving every pair (task, member) a score, a number that looks random but that every member computes alike from the two names. The member with the highest score owns the task. This is called rendezvous hashing.",
            "Because the score depends only on the task and the member, a member that leaves only moves the tasks it owned; every other task stays where it was. A member that joins takes over only the tasks where it now scores highest.",
            "Click a tile or a square of the task grid: the panel \"Why?\" says which member computes it and where it ranks.",
        ],
    },
    Topic {
        id: "replication",
        title: "Replication: why r copies",
        text: &[
            "A result that lives on one machine is lost when that machine goes. So every result is copied to r members: the r highest-scoring members for that task.",
            "The number in each square of the task grid counts those copies. When a member holding a copy leaves, the square shows a red frame and fewer copies; a member that still holds the result sends it to the next-ranked member, and the square heals (a white frame). Nothing is computed again while one copy is alive.",
        ],
    },
    Topic {
        id: "failure",
        title: "Failure detection: three signals",
        text: &[
            "A member can notice that another has gone in three ways. The signaling server sees its connection close (when a tab is closed or a process ends). The data channel between the two closes (when the browser tears it down). Or nothing arrives any more: every member sends a small heartbeat to every other four times a second, and one that stays silent for 1.5 s is declared gone.",
            "Browsers on their own notice a dead connection only after 5 to 6 seconds, because WebRTC waits that long for the network to come back. The heartbeat makes it under 1.5 s. The log says which signal came first and how long after the member was last heard.",
            "\"Fail\" in the presenter's console makes a member go silent as a crashed machine would, with its connections still open: only the heartbeat can tell.",
        ],
    },
    Topic {
        id: "quorum",
        title: "Quorum and liars",
        text: &[
            "A member can be wrong: a bug, a broken machine, or someone who lies on purpose. With q = 1 the first result reported is believed. With q = 2 a result counts only once two members have reported the same result (compared by a hash of its bytes).",
            "When two reports disagree, more members compute the task until q of them agree. A member whose report disagrees with the agreed result is marked a liar: it gets no more tasks, and its reports are ignored. The graph marks it with ✗ and a dashed red ring.",
            "Try it: the console's scenario \"A liar, caught by q = 2\" makes a member return wrong pictures, and the finished picture is still exactly right.",
        ],
    },
    Topic {
        id: "stealing",
        title: "Stealing and speculative backups",
        text: &[
            "A member that has finished its own tasks does not wait: it takes a task that belongs to a busy member and computes it (stealing). The inspector then says it ranks lower than first for that task.",
            "When a task runs much longer than the others, another member starts a backup copy of it; whichever finishes first counts. This hides a slow machine without knowing why it is slow.",
        ],
    },
    Topic {
        id: "board",
        title: "The task board: how members agree without a leader",
        text: &[
            "Each member keeps a board of facts about every task: \"I am computing it\", \"my result hashes to this\", \"I hold the bytes\". A member only ever writes facts about itself, and sends them to the others.",
            "Boards are merged by taking the union of facts, so facts can arrive late, twice or in any order and two members that have seen the same facts have the same board. Members catch up with each other by comparing how many facts each has sent. This is why the mesh keeps working when the signaling server is gone, and why a cut link heals when it is restored.",
        ],
    },
];

/// The topic an event of the log is an example of, by its kind.
pub fn topic_for(event: &str, reason: &str) -> Option<&'static str> {
    Some(match (event, reason) {
        ("left", "cut") | ("joined", _) => "board",
        ("left", _) => "failure",
        ("job", _) => "partitioning",
        ("warning", _) => "quorum",
        ("done", _) => "replication",
        ("console", _) => "failure",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_goes_to_a_topic_and_topics_are_unique() {
        for (e, r) in [
            ("left", "heartbeat"),
            ("left", "cut"),
            ("joined", ""),
            ("job", ""),
            ("warning", ""),
            ("done", ""),
            ("console", ""),
        ] {
            let id = topic_for(e, r).expect("a topic");
            assert!(TOPICS.iter().any(|t| t.id == id), "{id}");
        }
        for t in TOPICS {
            assert_eq!(TOPICS.iter().filter(|u| u.id == t.id).count(), 1);
            assert!(!t.text.is_empty());
        }
        assert_eq!(topic_for("other", ""), None);
    }
}
