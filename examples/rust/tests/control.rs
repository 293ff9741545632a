//! Output control through the Rust wrapper on the r1like-chat fixture (MobileLLM-R1 architecture, random weights,
//! Llama-3 tokenizer): logprobs equal a double log-softmax of the session's own logits, a ban moves the arg-max,
//! the reasoning budget ends the thought after exactly N tokens with the channels concatenating to the text, a
//! batch gives the session's output for the same control, and bad control values come back as errors naming the
//! C field.
use mobilellm::{Batch, BatchSettings, Control, Model, Reasoning, Sampling};
use std::path::PathBuf;

fn model() -> Model {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root");
    Model::load(&repo.join("Tests/Fixtures/r1like-chat").to_string_lossy(), Some(1)).expect("fixture loads")
}

#[test]
fn logprobs_match_log_softmax_and_ban_moves_argmax() {
    let model = model();
    let prompt = model.tokenize("The answer is", true, true).unwrap();
    let control = Control { logprobs: Some(3), ..Control::default() };
    let mut streamed = Vec::new();
    let output = model.session(256).unwrap()
        .generate_controlled(&prompt, 6, Sampling::greedy(), true, &control, |piece| {
            if let Some(logprob) = &piece.logprob {
                streamed.push(logprob.clone());
            }
            true
        })
        .unwrap();
    assert_eq!(output.tokens.len(), 6);
    assert_eq!(output.logprobs, streamed);
    let mut session = model.session(256).unwrap();
    for (i, entry) in output.logprobs.iter().enumerate() {
        let fed: Vec<i32> = if i == 0 { prompt.clone() } else { vec![output.tokens[i - 1]] };
        let logits = session.eval(&fed, false).unwrap();
        let maximum = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let total: f64 = logits.iter().map(|&x| (x as f64 - maximum).exp()).sum();
        let expected = logits[output.tokens[i] as usize] as f64 - maximum - total.ln();
        assert!((expected - entry.logprob as f64).abs() < 1e-4, "token {i}: {expected} vs {}", entry.logprob);
        assert_eq!(entry.top.len(), 3);
        assert_eq!(entry.top[0].0, output.tokens[i]);
        assert!(entry.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    let banned = Control { logit_bias: vec![(output.tokens[0], f32::NEG_INFINITY)], ..Control::default() };
    let moved = model.session(256).unwrap()
        .generate_controlled(&prompt, 1, Sampling::greedy(), true, &banned, |_| true).unwrap();
    assert_ne!(moved.tokens[0], output.tokens[0]);
}

#[test]
fn reasoning_budget_and_batch_agree() {
    let model = model();
    let prompt = model.tokenize("Question: 2+2?\n<think>\n", true, true).unwrap();
    let control = Control {
        logprobs: Some(1),
        reasoning: Some(Reasoning { budget: Some(4), closing: Some("</think>\n\n".into()), ..Reasoning::default() }),
        ..Control::default()
    };
    let alone = model.session(256).unwrap()
        .generate_controlled(&prompt, 16, Sampling::greedy(), true, &control, |_| true).unwrap();
    assert_eq!(alone.reasoning_budget_index, Some(4));
    assert_eq!(alone.reasoning_tokens, 4);
    assert_eq!(format!("{}</think>{}", alone.reasoning, alone.answer), alone.text);

    let mut batch = Batch::new(&model, BatchSettings::default()).unwrap();
    let ids = batch.add_controlled(&prompt, 16, Sampling::greedy(), true, 1, &control).unwrap();
    let mut streamed = String::new();
    loop {
        let events = batch.step().unwrap();
        if events.is_empty() {
            break;
        }
        for index in 0..events.len() {
            for piece in batch.event_pieces(index).unwrap() {
                streamed.push_str(&piece.text);
            }
        }
    }
    let output = batch.output(ids[0]).unwrap();
    assert_eq!(output, alone);
    assert_eq!(streamed, alone.text);
}

#[test]
fn bad_control_is_an_error_naming_the_field() {
    let model = model();
    let prompt = model.tokenize("Hi", true, true).unwrap();
    let mut session = model.session(64).unwrap();
    let cases = [
        (Control { logprobs: Some(21), ..Control::default() }, "params->n_logprobs"),
        (Control { logit_bias: vec![(1 << 30, 1.0)], ..Control::default() }, "params->logit_bias_tokens"),
        (Control { grammar: Some("root ::= (".into()), ..Control::default() }, "line 1"),
        (Control { grammar: Some("root ::= \"a\"".into()), json_schema: Some("{}".into()), ..Control::default() },
         "params->json_schema"),
        (Control { reasoning: Some(Reasoning { closing: Some("no marker".into()), ..Reasoning::default() }),
                   ..Control::default() }, "params->reasoning_closing"),
    ];
    for (control, field) in cases {
        let error = session.generate_controlled(&prompt, 4, Sampling::greedy(), true, &control, |_| true).unwrap_err();
        assert!(error.message.contains(field), "{field}: {}", error.message);
    }
    assert_eq!(session.position().unwrap(), 0);
}
