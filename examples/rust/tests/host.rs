//! The Rust host against the engine's golden fixtures, the text reference, each error path, and four threads
//! with four sessions on one model (identical to serial).
use mobilellm::{Model, Sampling};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

fn fixture(name: &str) -> String {
    repo().join("Tests/Fixtures").join(name).to_string_lossy().into_owned()
}

/// A minimal JSON value and parser, enough for the fixtures (std only).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let bytes = text.as_bytes();
        let mut at = 0;
        Self::value(bytes, &mut at)
    }
    fn space(b: &[u8], at: &mut usize) {
        while *at < b.len() && b[*at].is_ascii_whitespace() {
            *at += 1;
        }
    }
    fn value(b: &[u8], at: &mut usize) -> Json {
        Self::space(b, at);
        match b[*at] {
            b'{' => {
                *at += 1;
                let mut members = Vec::new();
                loop {
                    Self::space(b, at);
                    if b[*at] == b'}' { *at += 1; break; }
                    if b[*at] == b',' { *at += 1; continue; }
                    let key = match Self::value(b, at) { Json::Text(k) => k, _ => panic!("key") };
                    Self::space(b, at);
                    *at += 1; // :
                    members.push((key, Self::value(b, at)));
                }
                Json::Object(members)
            }
            b'[' => {
                *at += 1;
                let mut items = Vec::new();
                loop {
                    Self::space(b, at);
                    if b[*at] == b']' { *at += 1; break; }
                    if b[*at] == b',' { *at += 1; continue; }
                    items.push(Self::value(b, at));
                }
                Json::Array(items)
            }
            b'"' => {
                *at += 1;
                let mut out: Vec<u16> = Vec::new();
                let mut bytes: Vec<u8> = Vec::new();
                while b[*at] != b'"' {
                    if b[*at] == b'\\' {
                        let e = b[*at + 1];
                        *at += 2;
                        match e {
                            b'n' => bytes.push(b'\n'),
                            b't' => bytes.push(b'\t'),
                            b'r' => bytes.push(b'\r'),
                            b'u' => {
                                let code = u16::from_str_radix(std::str::from_utf8(&b[*at..*at + 4]).unwrap(), 16).unwrap();
                                *at += 4;
                                out.clear();
                                out.push(code);
                                if (0xD800..0xDC00).contains(&code) && b[*at] == b'\\' && b[*at + 1] == b'u' {
                                    let low = u16::from_str_radix(std::str::from_utf8(&b[*at + 2..*at + 6]).unwrap(), 16).unwrap();
                                    *at += 6;
                                    out.push(low);
                                }
                                bytes.extend(String::from_utf16_lossy(&out).as_bytes());
                            }
                            other => bytes.push(other),
                        }
                    } else {
                        bytes.push(b[*at]);
                        *at += 1;
                    }
                }
                *at += 1;
                Json::Text(String::from_utf8(bytes).unwrap())
            }
            b't' => { *at += 4; Json::Bool(true) }
            b'f' => { *at += 5; Json::Bool(false) }
            b'n' => { *at += 4; Json::Null }
            _ => {
                let start = *at;
                while *at < b.len() && !b",]} \n\r\t".contains(&b[*at]) {
                    *at += 1;
                }
                Json::Number(std::str::from_utf8(&b[start..*at]).unwrap().parse().unwrap())
            }
        }
    }
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Object(m) => &m.iter().find(|(k, _)| k == key).expect(key).1,
            _ => panic!("not an object"),
        }
    }
    fn items(&self) -> &[Json] {
        match self { Json::Array(a) => a, _ => panic!("not an array") }
    }
    fn ints(&self) -> Vec<i32> {
        self.items().iter().map(|v| match v { Json::Number(n) => *n as i32, _ => panic!() }).collect()
    }
    fn floats(&self) -> Vec<f32> {
        self.items().iter().map(|v| match v { Json::Number(n) => *n as f32, _ => panic!() }).collect()
    }
    fn text(&self) -> &str {
        match self { Json::Text(t) => t, _ => panic!("not a string") }
    }
    fn boolean(&self) -> bool {
        matches!(self, Json::Bool(true))
    }
}

fn reference(name: &str) -> Json {
    Json::parse(&std::fs::read_to_string(repo().join("Tests/Fixtures").join(name).join("reference.json")).unwrap())
}

const MODELS: [&str; 4] = ["llama4-r1like-bf16-sharded", "llama4-nope-f32", "llama-f16", "llama-bf16-untied"];

#[test]
fn abi_version_matches() {
    assert_eq!(mobilellm::abi_version(), mobilellm::ffi::MOBILELLM_ABI_VERSION);
    assert!(!mobilellm::version().is_empty());
    // 40 as first released; use_mlock, then activations appended.
    assert_eq!(std::mem::size_of::<mobilellm::ffi::ModelParams>(), 56);
    assert_eq!(std::mem::size_of::<mobilellm::ffi::MemoryEstimate>(), 64);
    assert_eq!(std::mem::size_of::<mobilellm::ffi::SamplerParams>(), 56);
    // The header's current layout (48 bytes as first released; stop strings and output control appended).
    assert_eq!(std::mem::size_of::<mobilellm::ffi::GenerateParams>(), 192);
    assert_eq!(std::mem::size_of::<mobilellm::ffi::GenerateResult>(), 24);
    assert_eq!(std::mem::size_of::<mobilellm::ffi::TokenLogprob>(), 172);
    assert_eq!(std::mem::size_of::<mobilellm::ffi::Piece>(), 32);
    assert_eq!(std::mem::size_of::<mobilellm::ffi::ModelInfo>(), 64); // 52 as first released; activations appended
    assert_eq!(std::mem::size_of::<mobilellm::ffi::ChatParams>(), 32);
}

#[test]
fn memory_estimate_threads_and_system_info() {
    let options = mobilellm::LoadOptions { n_threads: Some(2), ..Default::default() };
    let estimate = mobilellm::estimate_memory(&fixture("llama-bf16-untied"), &options, 128).unwrap();
    assert_eq!(estimate.n_ctx, 128);
    assert!(estimate.kv_bytes > 0 && estimate.total_bytes > estimate.kv_bytes);
    let missing = mobilellm::estimate_memory(&fixture("no-such-model"), &options, 0).unwrap_err();
    assert!(missing.message.contains("no-such-model"), "{}", missing.message);
    let model = Model::load_with(&fixture("llama-bf16-untied"), &options).unwrap();
    let mut runs = Vec::new();
    for threads in [1, 2, 0] {
        let mut session = model.session(64).unwrap();
        session.set_threads(threads).unwrap();
        runs.push(session.generate(&[1, 2, 3, 4], 8, Sampling::greedy(), true, |_, _| true).unwrap().tokens);
    }
    assert!(runs[0] == runs[1] && runs[1] == runs[2] && runs[0].len() == 8);
    let mut session = model.session(64).unwrap();
    assert!(session.set_threads(3).unwrap_err().message.contains("n_threads"));
    assert!(mobilellm::system_info().contains("q4_0: exact-decode "));
}

#[test]
fn golden_logits_and_greedy() {
    for name in MODELS {
        let r = reference(name);
        let model = Model::load(&fixture(name), None).unwrap();
        assert_eq!(model.vocab_size() as f64, match r.get("vocab_size") { Json::Number(n) => *n, _ => 0.0 });
        for sequence in r.get("sequences").items() {
            let tokens = sequence.get("tokens").ints();
            let mut session = model.session(128).unwrap();
            let logits = session.eval(&tokens, true).unwrap();
            let expected: Vec<f32> = sequence.get("logits").items().iter().flat_map(|row| row.floats()).collect();
            assert_eq!(logits.len(), expected.len());
            let worst = logits.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-3, "{name}: max |dlogit| {worst}");
        }
        for greedy in r.get("greedy").items() {
            let continuation = greedy.get("continuation").ints();
            let mut session = model.session(128).unwrap();
            let mut streamed = 0;
            let result = session
                .generate(&greedy.get("prompt").ints(), continuation.len() as i32, Sampling::greedy(), false, |_, _| {
                    streamed += 1;
                    true
                })
                .unwrap();
            assert_eq!(result.tokens, continuation, "{name}");
            assert_eq!(result.stop_reason, 2);
            assert_eq!(streamed, continuation.len());
        }
    }
}

#[test]
fn text_matches_reference() {
    let dir = repo().join("Tests/Fixtures/r1like-chat");
    let r = Json::parse(&std::fs::read_to_string(dir.join("reference_text.json")).unwrap());
    let model = Model::load(dir.to_str().unwrap(), None).unwrap();
    for case in r.get("encodings").items() {
        let ids = model.tokenize(case.get("text").text(), case.get("add_special").boolean(), case.get("parse_special").boolean()).unwrap();
        assert_eq!(ids, case.get("ids").ints());
    }
    for case in r.get("decodings").items() {
        assert_eq!(model.detokenize(&case.get("ids").ints(), case.get("skip_special").boolean()).unwrap(), case.get("text").text());
    }
    let chat = &r.get("chats").items()[1];
    let messages: Vec<(String, String)> = chat
        .get("messages")
        .items()
        .iter()
        .map(|m| (m.get("role").text().to_string(), m.get("content").text().to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = messages.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(model.apply_chat_template(&pairs, chat.get("add_generation_prompt").boolean()).unwrap(), chat.get("text").text());
    // Streamed text pieces are whole characters that add up to the detokenized tokens.
    let mut session = model.session(512).unwrap();
    let mut text = String::new();
    let prompt = model.tokenize("Hello world!", true, false).unwrap();
    let result = session.generate(&prompt, 30, Sampling::seeded(0.8, 0.95, 5), true, |_, piece| {
        text.push_str(piece);
        true
    }).unwrap();
    let full = model.detokenize(&result.tokens, false).unwrap();
    assert!(full.starts_with(&text) && full.len() - text.len() < 4);
}

#[test]
fn errors_are_results_and_sessions_survive() {
    let e = Model::load("/nonexistent/model", None).err().unwrap();
    assert_eq!(e.status_name(), "MOBILELLM_ERROR_FILE_NOT_FOUND");
    assert!(e.message.contains("/nonexistent/model"));
    assert!(Model::load(&fixture("llama-f16"), Some(-2)).err().unwrap().message.contains("n_threads"));
    assert!(Model::load("bad\0path", None).err().unwrap().message.contains("NUL"));
    let model = Model::load(&fixture("llama-f16"), None).unwrap();
    assert!(model.metadata("nope").err().unwrap().message.contains("nope"));
    assert_eq!(model.metadata("architecture").unwrap(), "llama");
    assert_eq!(model.tokenize("hi", true, false).err().unwrap().status, 10);
    assert!(model.session(-1).err().unwrap().message.contains("n_ctx"));
    let mut session = model.session(8).unwrap();
    assert!(session.eval(&[1, 2, 100000], false).err().unwrap().message.contains("tokens[2]"));
    assert_eq!(session.eval(&[1; 9], false).err().unwrap().status_name(), "MOBILELLM_ERROR_CONTEXT_FULL");
    assert!(session.rewind(4).err().unwrap().message.contains("position"));
    assert!(session.load_state(b"garbage").err().unwrap().message.contains("state"));
    let mut bad = Sampling::greedy();
    bad.0.top_k = -1;
    assert!(session.generate(&[1, 2], 4, bad, false, |_, _| true).err().unwrap().message.contains("top_k"));
    assert!(session.generate(&[1, 2], -1, Sampling::greedy(), false, |_, _| true).err().unwrap().message.contains("max_tokens"));
    // A cancel with nothing running does nothing: it never lingers to cancel a later call.
    session.cancel_handle().cancel().unwrap();
    assert_eq!(session.position().unwrap(), 0);
    // Still usable.
    assert_eq!(session.eval(&[1, 2], false).unwrap().len(), model.vocab_size());
    // A panic in the callback stops generation instead of unwinding into C.
    session.reset().unwrap();
    let result = session.generate(&[1, 2], 5, Sampling::greedy(), true, |_, _| panic!("callback")).unwrap();
    assert_eq!(result.stop_reason, 4);
    // A cancel handle outliving its session is an error, not a crash.
    let stale = session.cancel_handle();
    let state = session.save_state().unwrap();
    drop(session);
    assert_eq!(stale.cancel().err().unwrap().status, 2);
    let mut other = model.session(8).unwrap();
    other.load_state(&state).unwrap();
    assert!(other.position().unwrap() > 0);
}

#[test]
fn four_threads_identical_to_serial() {
    let r = reference("llama4-nope-f32");
    let sequences = r.get("sequences").items();
    let tokens = sequences[sequences.len() - 1].get("tokens").ints();
    let model = Model::load(&fixture("llama4-nope-f32"), Some(1)).unwrap();
    let work = |index: u64| {
        let mut session = model.session(128).unwrap();
        let logits = session.eval(&tokens, true).unwrap();
        session.reset().unwrap();
        let generated = session.generate(&[5, 6, 7], 20, Sampling::seeded(0.9, 0.95, index), true, |_, _| true).unwrap();
        (logits, generated.tokens)
    };
    let serial: Vec<_> = (0..4).map(work).collect();
    let parallel: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|i| scope.spawn(move || work(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(serial, parallel);
    assert_ne!(serial[0].1, serial[1].1);
}

#[test]
fn cancel_from_another_thread_during_prefill() {
    let model = Model::load(&fixture("llama4-r1like-bf16-sharded"), None).unwrap();
    let mut session = model.session(4096).unwrap();
    let prompt: Vec<i32> = (0..4000).map(|i| (i * 7) % 384).collect();
    let handle = session.cancel_handle();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = handle.cancel();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        let error = session.eval(&prompt, false).err().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(error.status_name(), "MOBILELLM_ERROR_CANCELLED");
    });
    assert_eq!(session.position().unwrap(), 0);
    session.reset().unwrap();
    assert!(session.eval(&[1, 2], false).is_ok());
}

#[test]
fn activations_reach_the_engine() {
    let options = |name: &str| mobilellm::LoadOptions {
        n_threads: Some(1),
        quantize: Some("q8_0".into()),
        activations: Some(name.into()),
        ..Default::default()
    };
    let bad = Model::load_with(&fixture("llama-f16"), &options("int4")).err().expect("int4 must be refused");
    assert!(bad.message.contains("params->activations"), "{}", bad.message);
    let bad = mobilellm::estimate_memory(&fixture("llama-f16"), &options("int4"), 0).unwrap_err();
    assert!(bad.message.contains("params->activations"), "{}", bad.message);
    let mut logits = Vec::new();
    for name in ["exact", "int8"] {
        let model = Model::load_with(&fixture("llama-f16"), &options(name)).unwrap();
        assert_eq!(model.activations(), name);
        let mut session = model.session(32).unwrap();
        logits.push(session.eval(&[1, 169, 380, 17, 42, 311, 7], true).unwrap());
    }
    assert_eq!(logits[0].len(), logits[1].len());
    assert!(logits[0] != logits[1], "int8 activations gave exactly the exact logits");
}
