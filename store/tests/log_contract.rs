//! The contract of [`EventLog`], written once and run against both logs: JetStream (a nats-server per
//! test) and memory.

mod common;

use std::time::Duration;

use futures::StreamExt as _;
use prism_store::{AppendError, EventLog, EventStore, GENESIS_HASH, StoreConfig, StoreError, StoredCommit};

use common::{Writer, next_commit};

/// Runs each contract function against a fresh memory log and a fresh JetStream store. Attributes
/// after `=> memory` or `=> jetstream` apply to that run only.
macro_rules! contract {
    ($($name:ident $(=> $(memory #[$memory:meta])* $(jetstream #[$jetstream:meta])*)?),* $(,)?) => {
        mod memory {
            $(
                $($(#[$memory])*)?
                #[tokio::test]
                async fn $name() {
                    super::$name(&prism_store::MemoryLog::default()).await;
                }
            )*
        }

        mod jetstream {
            $(
                $($(#[$jetstream])*)?
                #[tokio::test]
                async fn $name() {
                    let (_server, store) = super::jetstream().await;
                    super::$name(&store).await;
                }
            )*
        }
    };
}

/// A JetStream store on a nats-server of its own; the server stops when dropped.
async fn jetstream() -> (prism_embedded::NatsServer, EventStore) {
    let server = prism_embedded::NatsServer::start_temp()
        .await
        .expect("nats-server starts");
    let store = EventStore::connect(&server.url(), StoreConfig::default())
        .await
        .expect("the store opens");
    (server, store)
}

contract!(
    an_append_to_a_new_subject_expects_sequence_zero,
    a_stale_expectation_is_a_conflict_and_stores_nothing,
    a_resent_message_id_is_a_duplicate_and_stores_nothing,
    a_resent_message_id_with_a_stale_expectation_is_a_conflict,
    the_last_sequence_of_a_subject_is_its_newest_commit,
    commits_after_returns_exactly_the_later_commits_in_order,
    commits_after_reads_long_histories_completely,
    commit_at_returns_the_commit_at_that_sequence,
    commit_at_sequence_zero_is_none,
    the_last_sequence_is_the_newest_commit_of_the_log,
    fingerprint_and_message_id_come_back_on_every_read,
    read_yields_matching_commits_in_order_then_live_ones,
    a_read_from_past_the_end_starts_at_its_start_sequence,
    load_accepts_an_intact_chain,
    load_refuses_an_event_stored_under_another_aggregate,
    load_refuses_an_event_that_does_not_match_its_hash,
    load_refuses_an_event_that_does_not_chain,
);

async fn an_append_to_a_new_subject_expects_sequence_zero(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    let events = a.next_events(2);
    let ack = a.append(log, events.clone(), "m1", None).await.unwrap();
    assert!(!ack.duplicate);
    assert_eq!(ack.sequence, 1, "the first commit of an empty log");
    let stored = log.commit_at(ack.sequence).await.unwrap().expect("stored");
    assert_eq!(stored.subject, a.subject);
    assert_eq!(stored.events, events);

    // A subject that has no commit yet accepts only the expectation 0.
    let mut b = Writer::workspace(log);
    b.last_sequence = ack.sequence;
    let refused = b.append(log, b.next_events(1), "m2", None).await;
    assert!(matches!(refused, Err(AppendError::Conflict)), "{refused:?}");
    assert_eq!(log.last_sequence().await.unwrap(), ack.sequence);
}

async fn a_stale_expectation_is_a_conflict_and_stores_nothing(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    let first = a.commit(log).await;
    let second = a.commit(log).await;
    for stale in [0, first, second + 7] {
        let mut late = a.clone();
        late.last_sequence = stale;
        let refused = late
            .append(log, a.next_events(1), &format!("late-{stale}"), None)
            .await;
        assert!(
            matches!(refused, Err(AppendError::Conflict)),
            "expecting {stale}: {refused:?}"
        );
    }
    assert_eq!(log.last_sequence().await.unwrap(), second);
    assert_eq!(log.subject_last_sequence(&a.subject).await.unwrap(), second);
    assert_eq!(log.commits_after(&a.subject, 0).await.unwrap().len(), 2);
}

async fn a_resent_message_id_is_a_duplicate_and_stores_nothing(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    let events = a.next_events(1);
    let first = a.append(log, events.clone(), "once", None).await.unwrap();
    // Resent as a client would after a lost acknowledgement, with the expectation that now holds.
    let again = a.append(log, events, "once", None).await.unwrap();
    assert_eq!(
        (again.sequence, again.duplicate),
        (first.sequence, true),
        "answered with the first commit"
    );
    assert_eq!(log.last_sequence().await.unwrap(), first.sequence);
    assert_eq!(log.commits_after(&a.subject, 0).await.unwrap().len(), 1);
}

async fn a_resent_message_id_with_a_stale_expectation_is_a_conflict(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    let events = a.next_events(1);
    let original = a.append_of(&events, "once");
    let first = log.append(original.clone()).await.unwrap();
    a.advance(&events, first.sequence);
    let second = a.commit(log).await;

    // The expected-sequence check comes before de-duplication.
    let resent = log.append(original).await;
    assert!(matches!(resent, Err(AppendError::Conflict)), "{resent:?}");
    assert_eq!(log.last_sequence().await.unwrap(), second);
}

async fn the_last_sequence_of_a_subject_is_its_newest_commit(log: &dyn EventLog) {
    let (mut a, mut b) = (Writer::workspace(log), Writer::workspace(log));
    assert_eq!(log.subject_last_sequence(&a.subject).await.unwrap(), 0);
    let a1 = a.commit(log).await;
    assert_eq!(log.subject_last_sequence(&a.subject).await.unwrap(), a1);
    let b1 = b.commit(log).await;
    let a2 = a.commit(log).await;
    b.commit(log).await;
    let b3 = b.commit(log).await;
    assert_eq!(log.subject_last_sequence(&a.subject).await.unwrap(), a2);
    assert_eq!(log.subject_last_sequence(&b.subject).await.unwrap(), b3);
    assert!(a1 < b1 && b1 < a2 && a2 < b3);
}

async fn commits_after_returns_exactly_the_later_commits_in_order(log: &dyn EventLog) {
    let (mut a, mut b) = (Writer::workspace(log), Writer::workspace(log));
    let mut sequences = Vec::new();
    for _ in 0..3 {
        sequences.push(a.commit(log).await);
        b.commit(log).await;
    }
    for (i, &after) in [0].iter().chain(&sequences).enumerate() {
        let commits = log.commits_after(&a.subject, after).await.unwrap();
        let got: Vec<u64> = commits.iter().map(|c| c.sequence).collect();
        assert_eq!(got, sequences[i..], "after {after}");
        assert!(commits.iter().all(|c| c.subject == a.subject));
    }
    // Between two commits of the subject: the next one.
    let between = log.commits_after(&a.subject, sequences[0] + 1).await.unwrap();
    assert_eq!(between.first().map(|c| c.sequence), Some(sequences[1]));
    assert!(
        log.commits_after("prism.ev.workspace.nobody", 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Past 16 commits the JetStream log switches from direct gets to a consumer.
async fn commits_after_reads_long_histories_completely(log: &dyn EventLog) {
    let (mut a, mut b) = (Writer::workspace(log), Writer::workspace(log));
    let mut sequences = Vec::new();
    for _ in 0..40 {
        sequences.push(a.commit(log).await);
        b.commit(log).await;
    }
    for skip in [0, 3, 16, 17, 23, 30, 39, 40] {
        let after = if skip == 0 { 0 } else { sequences[skip - 1] };
        let commits = log.commits_after(&a.subject, after).await.unwrap();
        let got: Vec<u64> = commits.iter().map(|c| c.sequence).collect();
        assert_eq!(got, sequences[skip..], "after {after}");
        let versions: Vec<u64> = commits.iter().map(|c| c.events[0].aggregateversion).collect();
        assert_eq!(versions, (skip as u64 + 1..=40).collect::<Vec<_>>());
    }
    assert_eq!(log.load(&a.subject).await.unwrap().len(), 40);
}

async fn commit_at_returns_the_commit_at_that_sequence(log: &dyn EventLog) {
    let (mut a, mut b) = (Writer::workspace(log), Writer::workspace(log));
    let a1 = a.commit(log).await;
    let events = b.next_events(3);
    let b1 = b.append(log, events.clone(), "b1", None).await.unwrap().sequence;

    let found = log.commit_at(b1).await.unwrap().expect("present");
    assert_eq!((found.sequence, found.subject.as_str()), (b1, b.subject.as_str()));
    assert_eq!(found.events, events);
    assert_eq!(found.msg_id.as_deref(), Some("b1"));
    assert_eq!(
        log.commit_at(a1).await.unwrap().expect("present").subject,
        a.subject
    );
    assert!(log.commit_at(b1 + 1).await.unwrap().is_none(), "past the end");
    assert!(
        log.commit_at(b1 + 1000).await.unwrap().is_none(),
        "far past the end"
    );
}

async fn commit_at_sequence_zero_is_none(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    a.commit(log).await;
    let found = log.commit_at(0).await;
    assert!(matches!(found, Ok(None)), "{found:?}");
}

async fn the_last_sequence_is_the_newest_commit_of_the_log(log: &dyn EventLog) {
    assert_eq!(log.last_sequence().await.unwrap(), 0, "an empty log");
    let (mut a, mut b) = (Writer::workspace(log), Writer::new(log, "computation"));
    a.commit(log).await;
    let last = b.commit(log).await;
    assert_eq!(log.last_sequence().await.unwrap(), last);
    let mut late = a.clone();
    late.last_sequence = 0;
    assert!(late.append(log, a.next_events(1), "late", None).await.is_err());
    assert_eq!(
        log.last_sequence().await.unwrap(),
        last,
        "a refused append moves nothing"
    );
}

async fn fingerprint_and_message_id_come_back_on_every_read(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    let keyed = a
        .append(log, a.next_events(1), "keyed", Some("fingerprint-1"))
        .await
        .unwrap()
        .sequence;
    let plain = a
        .append(log, a.next_events(1), "plain", None)
        .await
        .unwrap()
        .sequence;
    let expected = vec![
        (keyed, Some("keyed".to_owned()), Some("fingerprint-1".to_owned())),
        (plain, Some("plain".to_owned()), None),
    ];
    let fields = |c: &StoredCommit| (c.sequence, c.msg_id.clone(), c.fingerprint.clone());

    let at = vec![
        fields(&log.commit_at(keyed).await.unwrap().unwrap()),
        fields(&log.commit_at(plain).await.unwrap().unwrap()),
    ];
    assert_eq!(at, expected, "commit_at");
    let after: Vec<_> = log
        .commits_after(&a.subject, 0)
        .await
        .unwrap()
        .iter()
        .map(fields)
        .collect();
    assert_eq!(after, expected, "commits_after");
    let loaded: Vec<_> = log.load(&a.subject).await.unwrap().iter().map(fields).collect();
    assert_eq!(loaded, expected, "load");
    let mut stream = log.read(1, &a.subject).await.unwrap();
    let read = vec![
        fields(&next_commit(&mut stream).await),
        fields(&next_commit(&mut stream).await),
    ];
    assert_eq!(read, expected, "read");
}

async fn read_yields_matching_commits_in_order_then_live_ones(log: &dyn EventLog) {
    let (mut a, mut b, mut c) = (
        Writer::workspace(log),
        Writer::workspace(log),
        Writer::new(log, "computation"),
    );
    let a1 = a.commit(log).await; // 1
    let _c1 = c.commit(log).await; // 2
    let b1 = b.commit(log).await; // 3
    let a2 = a.commit(log).await; // 4
    let _c2 = c.commit(log).await; // 5
    let b2 = b.commit(log).await; // 6

    let workspaces = log.subjects().of_type("workspace");
    assert_eq!(workspaces, "prism.ev.workspace.>");
    let mut stream = log.read(b1, &workspaces).await.unwrap();
    for expected in [b1, a2, b2] {
        let commit = next_commit(&mut stream).await;
        assert_eq!(commit.sequence, expected);
        assert!(
            commit.subject.starts_with("prism.ev.workspace."),
            "{}",
            commit.subject
        );
    }
    let mut only_a = log.read(1, &a.subject).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let commit = next_commit(&mut only_a).await;
        assert_eq!(commit.subject, a.subject);
        seen.push(commit.sequence);
    }

    // Live: a commit outside the filter is passed over, the next one inside it comes.
    c.commit(log).await;
    let a3 = a.commit(log).await;
    let live = next_commit(&mut stream).await;
    assert_eq!((live.sequence, live.subject.as_str()), (a3, a.subject.as_str()));
    assert_eq!(next_commit(&mut only_a).await.sequence, a3);
    assert_eq!(seen, [a1, a2]);
}

async fn a_read_from_past_the_end_starts_at_its_start_sequence(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    let last = a.commit(log).await;
    let start = last + 3;
    let mut stream = log.read(start, &log.subjects().all()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
    assert!(early.is_err(), "nothing to read yet: {early:?}");
    for _ in 0..3 {
        a.commit(log).await;
    }
    assert_eq!(next_commit(&mut stream).await.sequence, start);
}

async fn load_accepts_an_intact_chain(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    a.append(log, a.next_events(2), "first", None).await.unwrap();
    a.commit(log).await;
    let commits = log.load(&a.subject).await.unwrap();
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0].events[0].prevhash, GENESIS_HASH);
    assert_eq!(commits[1].events[0].prevhash, commits[0].events[1].hash);
    assert_eq!(commits[1].tip().map(|t| t.version), Some(3));
}

/// Asserts that loading `subject` fails as tampered at `sequence`.
async fn assert_tampered(log: &dyn EventLog, subject: &str, sequence: u64) -> String {
    match log.load(subject).await {
        Err(StoreError::Tampered {
            subject: found,
            sequence: at,
            reason,
        }) => {
            assert_eq!((found.as_str(), at), (subject, sequence), "{reason}");
            reason
        }
        other => panic!("tampering went unnoticed: {other:?}"),
    }
}

async fn load_refuses_an_event_stored_under_another_aggregate(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    a.commit(log).await;
    // An event of another workspace, sealed and chained to `a`'s tip, under `a`'s subject.
    let mut other = a.clone();
    other.id = uuid::Uuid::now_v7().simple().to_string();
    let events = other.next_events(1);
    let sequence = a.append(log, events, "misplaced", None).await.unwrap().sequence;
    let reason = assert_tampered(log, &a.subject, sequence).await;
    assert!(reason.contains("belongs to"), "{reason}");

    // An event of another aggregate type, likewise.
    let mut b = Writer::workspace(log);
    let mut computation = b.clone();
    computation.aggregate_type = "computation".into();
    let sequence = b
        .append(log, computation.next_events(1), "typed", None)
        .await
        .unwrap()
        .sequence;
    assert_tampered(log, &b.subject, sequence).await;
}

async fn load_refuses_an_event_that_does_not_match_its_hash(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    a.commit(log).await;
    let mut events = a.next_events(2);
    events[1].data["description"] = "rewritten".into();
    let sequence = a.append(log, events, "edited", None).await.unwrap().sequence;
    let reason = assert_tampered(log, &a.subject, sequence).await;
    assert!(reason.contains("hash"), "{reason}");
}

async fn load_refuses_an_event_that_does_not_chain(log: &dyn EventLog) {
    let mut a = Writer::workspace(log);
    a.commit(log).await;
    let mut events = a.next_events(1);
    common::seal(&mut events, &"f".repeat(64));
    let sequence = a.append(log, events, "unchained", None).await.unwrap().sequence;
    let reason = assert_tampered(log, &a.subject, sequence).await;
    assert!(reason.contains("chain"), "{reason}");

    // Inside one commit as well: the second event skips the first.
    let mut b = Writer::workspace(log);
    let mut events = b.next_events(2);
    let first_prev = events[0].prevhash.clone();
    common::seal(&mut events[1..], &first_prev);
    let sequence = b.append(log, events, "skipping", None).await.unwrap().sequence;
    assert_tampered(log, &b.subject, sequence).await;

    // And a version that skips one.
    let mut c = Writer::workspace(log);
    c.commit(log).await;
    let mut events = c.next_events(1);
    events[0].aggregateversion += 1;
    common::seal(&mut events, &c.hash);
    let sequence = c.append(log, events, "skipped", None).await.unwrap().sequence;
    let reason = assert_tampered(log, &c.subject, sequence).await;
    assert!(reason.contains("version"), "{reason}");
}
