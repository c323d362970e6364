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
            "A tab that only shows a picture does not need every tile: for a tile it holds no copy of, it asks a holder for a preview, one pixel in 16 of the tile. The hash members agree on for a tile covers its preview too, so a member cannot slip a wrong preview past the others. \"Fetch the full picture\" asks for every tile; the presenter's tab always does.",
        ],
    },
    Topic {
        id: "failure",
        title: "Failure detection: three signals",
        text: &[
            "A member can notice that another has gone in three ways. The signaling server sees its connection close (when a tab is closed or a process ends). The data channel between the two closes (when the browser tears it down). Or nothing arrives any more: every member sends a small heartbeat to every other four times a second, and one that stays silent for 1.5 s is declared gone.",
            "Browsers on their own notice a dead connection only after 5 to 6 seconds, because WebRTC waits that long for the network to come back. The heartbeat makes it under 1.5 s. The log says which signal came first and how long after the member was last heard.",
            "\"Fail\" in the presenter's console makes a member go silent as a crashed machine would, with its connections still open: only the heartbeat can tell.",
            "Silence is a suspicion, not a death sentence. A member declared gone by its silence gives up its work (others take it over), but its connection stays open: if it speaks again (a busy laptop, a stopped process that resumes, a phone that wakes) it is taken back at once, and the log says how long it was silent. A member also judges others only over the time it was awake itself, so waking up never makes it bury the members it did not hear while it slept.",
            "A tab that goes to the background (hidden behind another, or a phone about to lock) tells the others, which then wait 10 s instead of 1.5 s before they take its silence for a departure: a background tab's timers may run only once a second.",
        ],
    },
    Topic {
        id: "quorum",
        title: "Quorum and liars",
        text: &[
            "A member can be wrong: a bug, a broken machine, or someone who lies on purpose. With q = 1 the first result reported is believed. With q = 2 a result counts only once two members have reported the same result (compared by a hash of its bytes).",
            "When two reports disagree before a result is accepted, more members compute the task until q of them agree.",
            "A disagreement is not yet proof. With q = 1 the first report is believed, whoever sent it, so when a later report differs nobody can tell who is wrong: the page says so and marks nobody. With q = 2 or more, a member is caught lying only when at least two other members reported the accepted result: it gets no more tasks of that job, and its copies there do not count. It is shut out of every job only when two of those members are not the job's submitter, so that whoever submits a job cannot, with one friend, get an honest member shut out of everyone else's. The graph marks a caught member with ✗ and a dashed red ring.",
            "Try it: the console's scenario \"A liar, caught by q = 2\" makes a member return wrong pictures, and the finished picture is still exactly right.",
        ],
    },
    Topic {
        id: "stealing",
        title: "Stealing and speculative backups",
        text: &[
            "A member that has finished its own tasks does not wait: it takes a task that belongs to a busy member and computes it (stealing). Every member says why it computes a task when it starts it (placement chose it, it stole it, a backup, help asked for, or a result lost with every copy), so \"Why?\" gives the reason on every tab, with where the member ranks for that task.",
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
        ("joined", "back" | "background") => "failure",
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
            ("joined", "back"),
            ("joined", "background"),
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
