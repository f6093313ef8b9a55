//! What a reader's verifier asks the log: a reader that starts at the stream's first message needs
//! no question about an aggregate it has not seen, and judges what follows a bad commit as any other
//! reader does. On the memory log, which counts the questions.

use std::sync::Arc;

use futures::StreamExt as _;
use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_store::{
    Checked, CommandRequest, EventLog, MemoryLog, Metadata, Repository, StoredCommit, Verifier,
};

/// Three workspaces of two commits each, interleaved; returns the log and its commits in order.
async fn three_workspaces() -> (MemoryLog, Vec<StoredCommit>) {
    let log = MemoryLog::default();
    let repo = Repository::<Workspace>::new(log.clone());
    let meta = Metadata {
        actor: "alice".into(),
        ..Default::default()
    };
    let ids: Vec<WorkspaceId> = (0..3).map(|_| WorkspaceId(uuid::Uuid::now_v7())).collect();
    for &id in &ids {
        let create = WorkspaceCommand::Create {
            id,
            name: "Hospitals".into(),
            description: String::new(),
            admin: None,
        };
        repo.execute(CommandRequest::new(&id, create, meta.clone()))
            .await
            .unwrap();
    }
    for &id in &ids {
        let update = WorkspaceCommand::Update {
            name: Some("Clinics".into()),
            description: None,
        };
        repo.execute(CommandRequest::new(&id, update, meta.clone()))
            .await
            .unwrap();
    }
    let commits = read_all(&log).await;
    assert_eq!(commits.len(), 6);
    log.take_history_reads();
    (log, commits)
}

async fn read_all(log: &MemoryLog) -> Vec<StoredCommit> {
    let last = log.last_sequence().await.unwrap();
    let all = log.subjects().all();
    log.read(1, &all)
        .await
        .unwrap()
        .take(last as usize)
        .map(Result::unwrap)
        .collect()
        .await
}

/// Each commit checked in order: `None` for a verified one, else the quarantine's reason.
async fn check(verifier: &mut Verifier, commits: Vec<StoredCommit>) -> Vec<Option<String>> {
    let mut outcomes = Vec::new();
    for commit in commits {
        outcomes.push(match verifier.check(commit).await.unwrap() {
            Checked::Verified(_) => None,
            Checked::Quarantined { reason, .. } => Some(reason.to_string()),
        });
    }
    outcomes
}

#[tokio::test]
async fn a_reader_from_the_first_message_asks_the_log_nothing() {
    let (log, commits) = three_workspaces().await;
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());

    let outcomes = check(&mut Verifier::new(shared.clone()), commits.clone()).await;
    assert_eq!(outcomes, vec![None; 6]);
    assert_eq!(log.take_history_reads().len(), 3, "one question per aggregate");

    let outcomes = check(&mut Verifier::from_first(shared), commits).await;
    assert_eq!(outcomes, vec![None; 6]);
    assert_eq!(log.take_history_reads(), []);
}

#[tokio::test]
async fn after_a_bad_commit_a_reader_from_the_first_message_judges_as_any_other() {
    let (log, _) = three_workspaces().await;
    // The second workspace's first commit rewritten.
    log.tamper(2, |commit| commit.events[0].data["name"] = "Mallory".into());
    let commits = read_all(&log).await;
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());

    let asking = check(&mut Verifier::new(shared.clone()), commits.clone()).await;
    let from_first = check(&mut Verifier::from_first(shared), commits).await;
    assert!(asking[1].is_some() && asking[4].is_some(), "{asking:?}");
    assert_eq!(from_first, asking);
}
