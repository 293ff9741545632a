//! The Rust Batch wrapper against `Session::generate` (the single-sequence path, checked against transformers by
//! host.rs): greedy batches token-identical to each prompt alone, seeded samples equal to fresh generations
//! seeded seed + i, cancel one / cancel all, kept logits, bad arguments as errors, and two threads each running
//! its own batch with the serial results.
use mobilellm::{Batch, BatchEvent, BatchSettings, Generation, Model, Sampling};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root");
    repo.join("Tests/Fixtures").join(name).to_string_lossy().into_owned()
}

fn prompts() -> Vec<Vec<i32>> {
    vec![vec![1, 17, 42, 99], vec![5], (200..240).collect(), vec![7, 7, 7, 8, 8]]
}

fn model() -> Model {
    Model::load(&fixture("llama4-r1like-bf16-sharded"), Some(1)).expect("fixture loads")
}

fn alone(model: &Model, prompt: &[i32], max_tokens: i32, sampling: Sampling) -> Generation {
    model.session(128).unwrap().generate(prompt, max_tokens, sampling, true, |_, _| true).unwrap()
}

/// Runs `batch` to the end; returns the streamed tokens per sequence.
fn drain(batch: &mut Batch) -> HashMap<i32, Vec<i32>> {
    let mut streamed: HashMap<i32, Vec<i32>> = HashMap::new();
    batch
        .run(|event| {
            if let BatchEvent::Token { sequence, token, text } = event {
                assert!(text.is_none());
                streamed.entry(*sequence).or_default().push(*token);
            }
            true
        })
        .unwrap();
    streamed
}

#[test]
fn greedy_batch_equals_each_prompt_alone() {
    let model = model();
    let mut batch = Batch::new(&model, BatchSettings::with_context(128)).unwrap();
    let ids: Vec<i32> = prompts().iter().map(|p| batch.add(p, 16, Sampling::greedy(), true, 1).unwrap()[0]).collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    assert_eq!(batch.active_count().unwrap(), 4);
    let streamed = drain(&mut batch);
    assert_eq!(batch.active_count().unwrap(), 0);
    for (prompt, id) in prompts().iter().zip(&ids) {
        let expected = alone(&model, prompt, 16, Sampling::greedy());
        let got = batch.result(*id).unwrap();
        assert_eq!(got, expected);
        assert_eq!(streamed[id], expected.tokens);
        assert_eq!(batch.text(*id).unwrap(), "");
    }
    batch.forget(0).unwrap();
    assert_eq!(batch.result(0).unwrap_err().status_name(), "MOBILELLM_ERROR_INVALID_ARGUMENT");
    assert!(batch.step().unwrap().is_empty());
}

#[test]
fn seeded_samples_equal_fresh_generations() {
    let model = model();
    let mut batch = Batch::new(&model, BatchSettings::with_context(128)).unwrap();
    let ids = batch.add(&prompts()[0], 16, Sampling::seeded(0.9, 0.95, 42), true, 3).unwrap();
    assert_eq!(ids, vec![0, 1, 2]);
    drain(&mut batch);
    for (i, id) in ids.iter().enumerate() {
        let expected = alone(&model, &prompts()[0], 16, Sampling::seeded(0.9, 0.95, 42 + i as u64));
        assert_eq!(batch.result(*id).unwrap(), expected, "sample {i}");
    }
    assert_ne!(batch.result(0).unwrap().tokens, batch.result(1).unwrap().tokens);
}

#[test]
fn cancel_one_and_all() {
    let model = model();
    let mut batch = Batch::new(&model, BatchSettings::with_context(128)).unwrap();
    for p in prompts() {
        batch.add(&p, 16, Sampling::greedy(), true, 1).unwrap();
    }
    batch.step().unwrap();
    batch.cancel(2).unwrap();
    drain(&mut batch);
    let cancelled = batch.result(2).unwrap();
    assert_eq!(cancelled.stop_reason, mobilellm::ffi::MOBILELLM_STOP_CANCELLED);
    assert_eq!(cancelled.tokens.len(), 1);
    assert_eq!(batch.result(0).unwrap(), alone(&model, &prompts()[0], 16, Sampling::greedy()));

    // cancel_all from another thread through a cancel handle, while the batch steps.
    let ids = batch.add(&prompts()[1], 1000, Sampling::greedy(), true, 3).unwrap();
    let handle = batch.cancel_handle();
    std::thread::spawn(move || handle.cancel_all().unwrap()).join().unwrap();
    let mut ended = 0;
    batch
        .run(|event| {
            if let BatchEvent::Finished { stop_reason, .. } = event {
                assert_eq!(*stop_reason, mobilellm::ffi::MOBILELLM_STOP_CANCELLED);
                ended += 1;
            }
            true
        })
        .unwrap();
    assert_eq!(ended, 3);
    assert!(ids.iter().all(|id| batch.result(*id).unwrap().tokens.is_empty()));

    // run() stopped by its callback: every sequence finishes cancelled.
    for p in prompts() {
        batch.add(&p, 16, Sampling::greedy(), true, 1).unwrap();
    }
    let mut reasons = Vec::new();
    batch
        .run(|event| {
            if let BatchEvent::Finished { stop_reason, .. } = event {
                reasons.push(*stop_reason);
            }
            false
        })
        .unwrap();
    assert_eq!(reasons, vec![mobilellm::ffi::MOBILELLM_STOP_CANCELLED; 4]);
}

#[test]
fn kept_logits_and_sessions() {
    let model = model();
    let mut settings = BatchSettings::with_context(128);
    settings.0.keep_logits = true;
    let mut batch = Batch::new(&model, settings).unwrap();
    let mut session = model.session(128).unwrap();
    let id = batch.add_session(&mut session, &prompts()[3], 8, Sampling::greedy(), true).unwrap();
    batch.step().unwrap();
    let expected_logits = model.session(128).unwrap().eval(&prompts()[3], false).unwrap();
    assert_eq!(batch.logits(id).unwrap(), expected_logits);
    drain(&mut batch);
    let expected = alone(&model, &prompts()[3], 8, Sampling::greedy());
    assert_eq!(batch.result(id).unwrap(), expected);
    assert_eq!(session.position().unwrap() as usize, prompts()[3].len() + expected.tokens.len() - 1);
}

#[test]
fn bad_arguments_are_errors() {
    let model = model();
    let mut batch = Batch::new(&model, BatchSettings::default()).unwrap();
    let message = |e: mobilellm::Error| (e.status_name(), e.message);
    let (name, text) = message(batch.add(&[], 4, Sampling::greedy(), true, 1).unwrap_err());
    assert_eq!(name, "MOBILELLM_ERROR_INVALID_ARGUMENT");
    assert!(text.contains("prompt"), "{text}");
    let (_, text) = message(batch.add(&[1, 99999], 4, Sampling::greedy(), true, 1).unwrap_err());
    assert!(text.contains("[1]"), "{text}");
    let (_, text) = message(batch.add(&[1], 4, Sampling::greedy(), true, 0).unwrap_err());
    assert!(text.contains("n_samples"), "{text}");
    let (_, text) = message(batch.add(&[1], 4, Sampling::greedy(), true, i32::MAX).unwrap_err());
    assert!(text.contains("n_samples"), "{text}");
    let (_, text) = message(batch.add(&[1], -1, Sampling::greedy(), true, 1).unwrap_err());
    assert!(text.contains("params->max_tokens"), "{text}");
    let (_, text) = message(batch.cancel(9).unwrap_err());
    assert!(text.contains("never issued"), "{text}");
    let (_, text) = message(batch.logits(0).unwrap_err());
    assert!(text.contains("keep_logits"), "{text}");
    let mut settings = BatchSettings::default();
    settings.0.max_rows_per_step = 999;
    let (_, text) = message(Batch::new(&model, settings).err().unwrap());
    assert!(text.contains("params->max_rows_per_step"), "{text}");
    // A handle used after the batch is gone is an error, not a crash.
    let handle = batch.cancel_handle();
    drop(batch);
    assert_eq!(handle.cancel_all().unwrap_err().status_name(), "MOBILELLM_ERROR_INVALID_HANDLE");
}

#[test]
fn two_threads_each_with_a_batch_give_the_serial_results() {
    let model = model();
    let work = |model: &Model, offset: usize| -> Vec<Generation> {
        let mut batch = Batch::new(model, BatchSettings::with_context(128)).unwrap();
        let mut all = prompts();
        all.rotate_left(offset);
        let ids: Vec<i32> = all.iter().map(|p| batch.add(p, 12, Sampling::seeded(0.8, 1.0, 7), true, 1).unwrap()[0]).collect();
        drain(&mut batch);
        ids.iter().map(|id| batch.result(*id).unwrap()).collect()
    };
    let serial: Vec<Vec<Generation>> = (0..2).map(|t| work(&model, t)).collect();
    let parallel: Vec<Vec<Generation>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2).map(|t| { let model = &model; scope.spawn(move || work(model, t)) }).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(serial, parallel);
}
