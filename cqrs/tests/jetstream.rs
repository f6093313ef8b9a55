//! What the JetStream store writes to the log, and how it refuses what the log cannot hold.

mod support;

use std::collections::HashMap;

use cqrs_es::persist::SemanticVersionEventUpcaster;
use cqrs_es::{
    Aggregate, AggregateContext as _, AggregateError, DomainEvent, EventStore, event_sink::EventSink,
};
use prism_store::{EventLog as _, GENESIS_HASH};
use serde::{Deserialize, Serialize};
use serde_json::json;

use prism_cqrs::{Error, JetStreamEventStore, StoreConfig};
use support::account::{Account, AccountEvent};
use support::backends::{Backend, JetStream};

const SUBJECT: &str = "prism.ev.account.acc-1";

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn commit<S: EventStore<Account>>(
    store: &S,
    id: &str,
    events: Vec<AccountEvent>,
    meta: HashMap<String, String>,
) -> Result<(), AggregateError<support::account::AccountError>> {
    let context = store.load_aggregate(id).await?;
    store.commit(events, context, meta).await.map(drop)
}

#[tokio::test]
async fn a_commit_is_one_message_of_hash_chained_cloudevents() {
    let backend = JetStream::start().await.unwrap();
    let store = backend.store().with_source("/bank");
    let opened = AccountEvent::Opened {
        owner: "alice".into(),
    };
    let first = metadata(&[
        ("actor", "alice"),
        ("correlation_id", "req-1"),
        ("channel", "web"),
    ]);
    commit(
        &store,
        "acc-1",
        vec![opened, AccountEvent::Deposited { amount: 5 }],
        first,
    )
    .await
    .unwrap();
    commit(
        &store,
        "acc-1",
        vec![AccountEvent::Withdrawn { amount: 2 }],
        HashMap::new(),
    )
    .await
    .unwrap();

    let commits = store.log().load(SUBJECT).await.unwrap();
    assert_eq!(commits.len(), 2, "one message per commit");
    assert_eq!(commits[0].events.len(), 2);
    assert_eq!(commits[1].events.len(), 1);

    let events: Vec<_> = commits.iter().flat_map(|c| &c.events).collect();
    let types: Vec<&str> = events.iter().map(|e| e.ty.as_str()).collect();
    assert_eq!(
        types,
        [
            "io.prism.account.Opened.v1",
            "io.prism.account.Deposited.v1",
            "io.prism.account.Withdrawn.v1",
        ]
    );
    let mut prevhash = GENESIS_HASH.to_owned();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.specversion, "1.0");
        assert_eq!(event.source, "/bank");
        assert_eq!(event.subject, "account/acc-1");
        assert_eq!(event.datacontenttype, "application/json");
        assert_eq!(
            (event.aggregatetype.as_str(), event.aggregateid.as_str()),
            ("account", "acc-1")
        );
        assert_eq!(event.aggregateversion, n as u64 + 1);
        assert_eq!(event.prevhash, prevhash);
        assert_eq!(event.compute_hash(), event.hash);
        prevhash.clone_from(&event.hash);
    }

    assert_eq!(
        events[0].data,
        json!({
            "payload": {"Opened": {"owner": "alice"}},
            "metadata": {"actor": "alice", "correlation_id": "req-1", "channel": "web"},
            "eventversion": "1.0",
        })
    );
    assert_eq!(
        (events[0].actor.as_str(), events[0].correlationid.as_str()),
        ("alice", "req-1")
    );
    assert_eq!(events[1].correlationid, "req-1");
    // Without metadata: the default actor, correlated by the commit's first event.
    assert_eq!(
        events[2].data,
        json!({"payload": {"Withdrawn": {"amount": 2}}, "eventversion": "1.0"})
    );
    assert_eq!(events[2].actor, prism_cqrs::DEFAULT_ACTOR);
    assert_eq!(events[2].correlationid, events[2].id);
}

#[tokio::test]
async fn the_context_carries_the_position_to_append_at() {
    let backend = JetStream::start().await.unwrap();
    let store = backend.store();
    let context = store.load_aggregate("acc-1").await.unwrap();
    assert_eq!((context.version(), context.last_sequence()), (0, 0));
    assert_eq!(context.subject(), SUBJECT);

    let events = vec![
        AccountEvent::Opened {
            owner: "alice".into(),
        },
        AccountEvent::Deposited { amount: 1 },
    ];
    commit(&store, "acc-0", events.clone(), HashMap::new())
        .await
        .unwrap();
    commit(&store, "acc-1", events, HashMap::new()).await.unwrap();
    let context = store.load_aggregate("acc-1").await.unwrap();
    assert_eq!(context.aggregate_id(), "acc-1");
    assert_eq!((context.version(), context.last_sequence()), (2, 2));
}

#[tokio::test]
async fn a_kept_state_is_checked_against_the_log_before_use() {
    let backend = JetStream::start().await.unwrap();
    let (ours, theirs) = (backend.store(), backend.another_store().await.unwrap());
    let opened = AccountEvent::Opened {
        owner: "alice".into(),
    };
    commit(&ours, "acc-1", vec![opened], HashMap::new())
        .await
        .unwrap();
    commit(
        &ours,
        "acc-1",
        vec![AccountEvent::Deposited { amount: 5 }],
        HashMap::new(),
    )
    .await
    .unwrap();
    // Another process appends twice; our kept state is two commits behind.
    for amount in [7, 11] {
        commit(
            &theirs,
            "acc-1",
            vec![AccountEvent::Deposited { amount }],
            HashMap::new(),
        )
        .await
        .unwrap();
    }
    let mut context = ours.load_aggregate("acc-1").await.unwrap();
    assert_eq!((context.version(), context.last_sequence()), (4, 4));
    assert_eq!(context.aggregate().balance, 23);
    ours.commit(
        vec![AccountEvent::Deposited { amount: 1 }],
        context,
        HashMap::new(),
    )
    .await
    .unwrap();

    // A context loaded before the other process's commit still loses the race.
    let stale = ours.load_aggregate("acc-1").await.unwrap();
    commit(
        &theirs,
        "acc-1",
        vec![AccountEvent::Deposited { amount: 2 }],
        HashMap::new(),
    )
    .await
    .unwrap();
    let lost = ours
        .commit(vec![AccountEvent::Deposited { amount: 3 }], stale, HashMap::new())
        .await;
    assert!(matches!(lost, Err(AggregateError::AggregateConflict)), "{lost:?}");
    let mut context = ours.load_aggregate("acc-1").await.unwrap();
    assert_eq!(context.aggregate().balance, 26);
    assert_eq!(context.aggregate().events, 6);
}

#[tokio::test]
async fn a_commit_with_a_context_not_handled_by_cqrs_es_keeps_the_right_state() {
    let backend = JetStream::start().await.unwrap();
    let store = backend.store();
    let opened = AccountEvent::Opened {
        owner: "alice".into(),
    };
    // `commit` called directly: the context's aggregate never saw the events.
    let context = store.load_aggregate("acc-1").await.unwrap();
    store
        .commit(
            vec![opened, AccountEvent::Deposited { amount: 5 }],
            context,
            HashMap::new(),
        )
        .await
        .unwrap();
    let mut context = store.load_aggregate("acc-1").await.unwrap();
    assert_eq!(context.aggregate().balance, 5);
    assert_eq!(context.aggregate().events, 2);
    let fresh = backend.another_store().await.unwrap();
    let mut reloaded = fresh.load_aggregate("acc-1").await.unwrap();
    assert_eq!(reloaded.aggregate(), context.aggregate());
}

#[tokio::test]
async fn upcasters_rewrite_stored_events_as_they_load() {
    let backend = JetStream::start().await.unwrap();
    let events = vec![
        AccountEvent::Opened {
            owner: "alice".into(),
        },
        AccountEvent::Deposited { amount: 5 },
    ];
    commit(&backend.store(), "acc-1", events, HashMap::new())
        .await
        .unwrap();

    // Version 2.0 of `Deposited` counts cents: stored 1.0 events are multiplied on the way in.
    let to_cents = SemanticVersionEventUpcaster::new(
        "Deposited",
        "2.0",
        Box::new(|mut payload| {
            let amount = payload["Deposited"]["amount"].as_i64().unwrap_or_default();
            payload["Deposited"]["amount"] = json!(amount * 100);
            payload
        }),
    );
    let store = backend.store().with_upcasters(vec![Box::new(to_cents)]);
    let loaded = store.load_events("acc-1").await.unwrap();
    assert_eq!(loaded[1].payload, AccountEvent::Deposited { amount: 500 });
}

#[tokio::test]
async fn a_broken_hash_chain_is_not_loaded() {
    let backend = JetStream::start().await.unwrap();
    let store = backend.store();
    commit(
        &store,
        "acc-1",
        vec![AccountEvent::Opened {
            owner: "alice".into(),
        }],
        HashMap::new(),
    )
    .await
    .unwrap();
    // A second message on the subject whose event does not chain to the first one.
    let mut stored = store.log().load(SUBJECT).await.unwrap().remove(0);
    let mut forged = stored.events.remove(0);
    forged.aggregateversion = 2;
    forged.prevhash = "f".repeat(64);
    forged.hash = String::new();
    forged.hash = forged.compute_hash();
    let append = prism_store::Append {
        subject: SUBJECT.into(),
        expected_last_sequence: stored.sequence,
        msg_id: "forged".into(),
        fingerprint: None,
        traceparent: None,
        payload: serde_json::to_vec(&[forged]).unwrap(),
    };
    store.log().append(append).await.unwrap();

    let loaded = store.load_events("acc-1").await;
    assert!(
        matches!(loaded, Err(AggregateError::UnexpectedError(_))),
        "{loaded:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let mut backend = JetStream::start().await.unwrap();
    let store = backend.store();
    let context = store.load_aggregate("acc-1").await.unwrap();
    backend.server.stop().await.unwrap();
    let events = vec![AccountEvent::Opened {
        owner: "alice".into(),
    }];
    let outcome = store.commit(events, context, HashMap::new()).await;
    assert!(
        matches!(outcome, Err(AggregateError::DatabaseConnectionError(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_id_that_is_not_a_subject_token_is_refused() {
    let backend = JetStream::start().await.unwrap();
    for id in ["acc.1", "acc-*", "acc->", "", "acc 1"] {
        let loaded = backend.store().load_events(id).await;
        assert!(
            matches!(loaded, Err(AggregateError::UnexpectedError(_))),
            "{id:?}"
        );
    }
}

/// An aggregate whose names the type grammar cannot hold.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Dotted;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum DottedEvent {
    Happened,
}

impl DomainEvent for DottedEvent {
    fn event_type(&self) -> String {
        "it.happened".into()
    }

    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Dotted {
    const TYPE: &'static str = "dotted";
    type Command = ();
    type Event = DottedEvent;
    type Error = Never;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), sink: &EventSink<Self>) -> Result<(), Never> {
        sink.write(DottedEvent::Happened, self).await;
        Ok(())
    }

    fn apply(&mut self, _: DottedEvent) {}
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BadType;

impl Aggregate for BadType {
    const TYPE: &'static str = "bank.account";
    type Command = ();
    type Event = DottedEvent;
    type Error = Never;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), _: &EventSink<Self>) -> Result<(), Never> {
        Ok(())
    }

    fn apply(&mut self, _: DottedEvent) {}
}

#[tokio::test]
async fn names_outside_the_type_grammar_are_refused_before_anything_is_stored() {
    let backend = JetStream::start().await.unwrap();
    let url = backend.server.url();
    let refused = JetStreamEventStore::<BadType>::connect(&url, StoreConfig::default()).await;
    assert!(matches!(refused, Err(Error::InvalidName { .. })), "{refused:?}");

    let store = JetStreamEventStore::<Dotted>::connect(&url, StoreConfig::default())
        .await
        .unwrap();
    let context = store.load_aggregate("d-1").await.unwrap();
    let outcome = store
        .commit(vec![DottedEvent::Happened], context, HashMap::new())
        .await;
    assert!(
        matches!(outcome, Err(AggregateError::UnexpectedError(_))),
        "{outcome:?}"
    );
    assert!(store.load_events("d-1").await.unwrap().is_empty());
}
