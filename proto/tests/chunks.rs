//! Run requests cut into chunks and put together again, as upstream's server and agent do.

use std::time::{Duration, Instant};

use prism_proto::chunks::{CHUNK_SIZE, ChunkError, RunRequestAssembler, run_request_chunks};
use prism_proto::cvms::{
    Algorithm, ComputationRunReq, Dataset, ResultConsumer, RunReqChunks, server_stream_message,
};

fn request(id: &str, algorithm_args: usize) -> ComputationRunReq {
    ComputationRunReq {
        id: id.into(),
        name: "study".into(),
        description: "a test".into(),
        datasets: vec![Dataset {
            hash: vec![7; 32],
            user_key: vec![1; 44],
            filename: "data.csv".into(),
            ..Default::default()
        }],
        algorithm: Some(Algorithm {
            hash: vec![9; 32],
            user_key: vec![2; 44],
            algo_type: "bin".into(),
            // Long arguments make a request of several megabytes.
            algo_args: vec!["x".repeat(1000); algorithm_args],
            ..Default::default()
        }),
        result_consumers: vec![ResultConsumer {
            user_key: vec![3; 44],
        }],
        agent_config: None,
    }
}

fn chunks_of(request: &ComputationRunReq) -> Vec<RunReqChunks> {
    run_request_chunks(request)
        .into_iter()
        .map(|message| match message.message {
            Some(server_stream_message::Message::RunReqChunks(chunk)) => chunk,
            other => panic!("not a chunk: {other:?}"),
        })
        .collect()
}

#[test]
fn a_request_is_cut_into_full_mebibytes_then_the_rest_then_an_empty_last_chunk() {
    let big = request("run-1", 2_600);
    let chunks = chunks_of(&big);
    let encoded = prost::Message::encode_to_vec(&big);
    assert!(encoded.len() > 2 * CHUNK_SIZE && encoded.len() < 3 * CHUNK_SIZE);
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[0].data.len(), CHUNK_SIZE);
    assert_eq!(chunks[1].data.len(), CHUNK_SIZE);
    assert_eq!(chunks[2].data.len(), encoded.len() - 2 * CHUNK_SIZE);
    assert!(chunks[3].data.is_empty() && chunks[3].is_last);
    assert!(chunks[..3].iter().all(|c| !c.is_last && c.id == "run-1"));
    assert_eq!(
        chunks.iter().flat_map(|c| c.data.clone()).collect::<Vec<_>>(),
        encoded
    );

    // A small one: one chunk of data and the empty last one.
    let small = chunks_of(&request("run-2", 1));
    assert_eq!(small.len(), 2);
    assert!(small[1].is_last && small[1].data.is_empty());
}

#[test]
fn interleaved_requests_are_put_together_by_id() {
    let (a, b) = (request("a", 1_500), request("b", 3));
    let mut assembler = RunRequestAssembler::new(16 * CHUNK_SIZE);
    let now = Instant::now();
    let (mut chunks_a, mut chunks_b) = (chunks_of(&a).into_iter(), chunks_of(&b).into_iter());
    assert!(assembler.add(chunks_a.next().unwrap(), now).unwrap().is_none());
    assert!(assembler.add(chunks_b.next().unwrap(), now).unwrap().is_none());
    assert_eq!(assembler.pending(), 2);
    assert_eq!(assembler.add(chunks_b.next().unwrap(), now).unwrap(), Some(b));
    let mut done = None;
    for chunk in chunks_a {
        done = assembler.add(chunk, now).unwrap();
    }
    assert_eq!(done, Some(a));
    assert_eq!(assembler.pending(), 0);
}

#[test]
fn a_late_chunk_starts_over_and_an_oversize_request_is_refused() {
    let big = request("slow", 1_500);
    let mut assembler = RunRequestAssembler::new(16 * CHUNK_SIZE).with_timeout(Duration::from_secs(30));
    let start = Instant::now();
    let mut chunks = chunks_of(&big).into_iter();
    assembler.add(chunks.next().unwrap(), start).unwrap();
    // The rest arrives 31 s later: the first part was forgotten, so what arrives does not decode
    // into the request (it lacks its beginning).
    let late = start + Duration::from_secs(31);
    let mut result = Ok(None);
    for chunk in chunks {
        result = assembler.add(chunk, late);
    }
    assert!(!matches!(result, Ok(Some(ref r)) if *r == big));

    let mut small = RunRequestAssembler::new(1000);
    let error = chunks_of(&request("huge", 5))
        .into_iter()
        .map(|chunk| small.add(chunk, start))
        .find_map(Result::err)
        .expect("refused");
    assert!(matches!(error, ChunkError::TooLarge { limit: 1000, .. }));
    assert_eq!(small.pending(), 0);
}

/// Prism's consent rides in field 1000: the request decodes unchanged for an agent that does not
/// know it, and the assembler hands it over for one that does.
#[test]
fn a_request_carries_prisms_consent_where_unmodified_agents_do_not_look() {
    use prism_proto::chunks::run_request_chunks_with;
    use prism_proto::prism::{ParticipantConsent, RunConsent, consent_of, encode_with_consent};
    use prost::Message as _;

    let original = request("with-consent", 3);
    let consent = RunConsent {
        manifest: br#"{"format":"prism-manifest-v1"}"#.to_vec(),
        consents: vec![ParticipantConsent {
            participant: "alice".into(),
            signature: vec![1, 2, 3],
        }],
    };
    let encoded = encode_with_consent(&original, Some(&consent));
    assert_eq!(ComputationRunReq::decode(encoded.as_slice()).unwrap(), original);
    assert_eq!(consent_of(&encoded), Some(consent.clone()));
    assert_eq!(consent_of(&original.encode_to_vec()), None);

    let mut assembler = RunRequestAssembler::new(16 * CHUNK_SIZE);
    let mut assembled = None;
    for message in run_request_chunks_with(&original, Some(&consent)) {
        let Some(server_stream_message::Message::RunReqChunks(chunk)) = message.message else {
            panic!("run requests travel in chunks");
        };
        assembled = assembler.add_with_consent(chunk, Instant::now()).unwrap();
    }
    assert_eq!(assembled, Some((original, Some(consent))));
}
