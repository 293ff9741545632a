//! A safe Rust wrapper over `include/mobilellm.h` (std only).
//!
//! Every fallible call returns `Result<_, Error>` carrying the library's status and message; handles are freed
//! in `Drop`. Threading follows the C contract: a [`Model`] is `Send + Sync` and may be shared by sessions on any
//! threads; a [`Session`] is `Send` but used through `&mut self`, so one thread at a time; a [`CancelHandle`]
//! cancels a session from any thread, and stays harmless after the session is gone (the library's handle tables
//! turn a stale handle into an error).
#![deny(missing_docs)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::fmt;
use std::ptr;

/// Raw declarations of the C ABI (a subset of mobilellm.h: what the safe wrapper uses).
#[allow(missing_docs, non_camel_case_types)]
pub mod ffi {
    use std::ffi::{c_char, c_void};

    pub type mobilellm_status = i32;
    pub const MOBILELLM_OK: i32 = 0;
    pub const MOBILELLM_ERROR_BUFFER_TOO_SMALL: i32 = 6;
    pub const MOBILELLM_ERROR_CANCELLED: i32 = 8;
    pub const MOBILELLM_LOGITS_LAST: i32 = 1;
    pub const MOBILELLM_LOGITS_ALL: i32 = 2;
    pub const MOBILELLM_ABI_VERSION: u32 = 1;
    pub const MOBILELLM_STOP_CANCELLED: i32 = 6;
    pub const MOBILELLM_BATCH_EVENT_TOKEN: i32 = 1;
    pub const MOBILELLM_BATCH_EVENT_FINISHED: i32 = 2;
    pub const MOBILELLM_CHANNEL_ANSWER: i32 = 0;
    pub const MOBILELLM_CHANNEL_REASONING: i32 = 1;
    pub const MOBILELLM_CHANNEL_MARKER: i32 = 2;
    pub const MOBILELLM_MAX_TOP_LOGPROBS: usize = 20;

    pub type ProgressCallback = Option<unsafe extern "C" fn(f32, *mut c_void) -> bool>;
    pub type TokenCallback = Option<unsafe extern "C" fn(i32, *const c_char, usize, *mut c_void) -> bool>;
    pub type PieceCallback = Option<unsafe extern "C" fn(*const Piece, *mut c_void) -> bool>;

    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct TokenLogprob {
        pub token: i32,
        pub logprob: f32,
        pub n_top: i32,
        pub top_tokens: [i32; MOBILELLM_MAX_TOP_LOGPROBS],
        pub top_logprobs: [f32; MOBILELLM_MAX_TOP_LOGPROBS],
    }

    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct Piece {
        pub token: i32,
        pub channel: i32,
        pub text: *const c_char,
        pub text_length: usize,
        pub logprob: *const TokenLogprob,
    }

    #[repr(C)]
    pub struct ModelParams {
        pub struct_size: u32,
        pub n_threads: i32,
        pub default_context_length: i32,
        pub quantize: *const c_char,
        pub progress_callback: ProgressCallback,
        pub progress_user_data: *mut c_void,
        pub use_mlock: bool,
        pub activations: *const c_char,
    }

    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct MemoryEstimate {
        pub struct_size: u32,
        pub n_ctx: i32,
        pub kv_cache_type: i32,
        pub n_threads: i32,
        pub weights_mapped_bytes: u64,
        pub weights_anonymous_bytes: u64,
        pub kv_bytes_per_position: u64,
        pub kv_bytes: u64,
        pub scratch_bytes: u64,
        pub total_bytes: u64,
    }

    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct ModelInfo {
        pub struct_size: u32,
        pub vocab_size: i32,
        pub context_length: i32,
        pub default_context_length: i32,
        pub n_layers: i32,
        pub hidden_size: i32,
        pub n_heads: i32,
        pub n_kv_heads: i32,
        pub head_dim: i32,
        pub n_threads: i32,
        pub bos_token_id: i32,
        pub n_eos_token_ids: i32,
        pub has_tokenizer: bool,
        pub has_chat_template: bool,
        pub is_quantized: bool,
        pub activations: *const c_char,
    }

    impl Default for ModelInfo {
        fn default() -> Self {
            // Every field zero, `activations` null (what the library then overwrites).
            unsafe { std::mem::zeroed() }
        }
    }

    #[repr(C)]
    pub struct SessionParams {
        pub struct_size: u32,
        pub n_ctx: i32,
        pub kv_cache_type: i32,
    }

    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct SamplerParams {
        pub struct_size: u32,
        pub temperature: f32,
        pub top_k: i32,
        pub top_p: f32,
        pub min_p: f32,
        pub repetition_penalty: f32,
        pub frequency_penalty: f32,
        pub presence_penalty: f32,
        pub penalty_window: i32,
        pub seed: u64,
        pub use_seed: bool,
    }

    #[repr(C)]
    pub struct GenerateParams {
        pub struct_size: u32,
        pub max_tokens: i32,
        pub stop_token_ids: *const i32,
        pub n_stop_token_ids: usize,
        pub ignore_eos: bool,
        pub callback: TokenCallback,
        pub user_data: *mut c_void,
        pub stop_strings: *const *const c_char,
        pub n_stop_strings: usize,
        pub grammar: *const c_char,
        pub json_schema: *const c_char,
        pub logit_bias_tokens: *const i32,
        pub logit_bias_values: *const f32,
        pub n_logit_bias: usize,
        pub n_logprobs: i32,
        pub raw_logprobs: bool,
        pub reasoning: bool,
        pub reasoning_budget: i32,
        pub reasoning_start: *const c_char,
        pub reasoning_end: *const c_char,
        pub reasoning_closing: *const c_char,
        pub piece_callback: PieceCallback,
        pub logit_bias_pieces: *const *const c_char,
        pub logit_bias_piece_values: *const f32,
        pub n_logit_bias_pieces: usize,
        pub out_logprobs: *mut TokenLogprob,
        pub out_logprobs_capacity: usize,
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct GenerateResult {
        pub struct_size: u32,
        pub stop_reason: i32,
        pub n_prompt_tokens: i32,
        pub n_tokens: i32,
        pub n_reasoning_tokens: i32,
        pub reasoning_budget_index: i32,
    }

    #[repr(C)]
    pub struct ChatMessage {
        pub role: *const c_char,
        pub content: *const c_char,
    }

    #[repr(C)]
    pub struct ChatParams {
        pub struct_size: u32,
        pub add_generation_prompt: bool,
        pub variables_json: *const c_char,
        pub messages_json: *const c_char,
        pub template_override: *const c_char,
    }

    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct BatchParams {
        pub struct_size: u32,
        pub max_rows_per_step: i32,
        pub n_ctx: i32,
        pub kv_cache_type: i32,
        pub stream_text: bool,
        pub keep_logits: bool,
    }

    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct BatchEvent {
        pub kind: i32,
        pub sequence: i32,
        pub token: i32,
        pub stop_reason: i32,
        pub n_tokens: i32,
        pub n_prompt_tokens: i32,
        pub text: *const c_char,
        pub text_length: usize,
    }

    extern "C" {
        pub fn mobilellm_abi_version() -> u32;
        pub fn mobilellm_version_string() -> *const c_char;
        pub fn mobilellm_status_name(status: i32) -> *const c_char;
        pub fn mobilellm_last_error() -> *const c_char;
        pub fn mobilellm_model_params_init(params: *mut ModelParams);
        pub fn mobilellm_model_load(path: *const c_char, params: *const ModelParams, out: *mut *mut c_void) -> i32;
        pub fn mobilellm_model_free(model: *mut c_void) -> i32;
        pub fn mobilellm_model_estimate_memory(path: *const c_char, params: *const ModelParams, n_ctx: i32,
                                               out: *mut MemoryEstimate) -> i32;
        pub fn mobilellm_session_set_threads(session: *mut c_void, n_threads: i32) -> i32;
        pub fn mobilellm_batch_set_threads(batch: *mut c_void, n_threads: i32) -> i32;
        pub fn mobilellm_system_info() -> *const c_char;
        pub fn mobilellm_model_get_info(model: *const c_void, info: *mut ModelInfo) -> i32;
        pub fn mobilellm_model_eos_token_ids(model: *const c_void, ids: *mut i32, capacity: usize, count: *mut usize) -> i32;
        pub fn mobilellm_model_get_metadata(model: *const c_void, key: *const c_char, buffer: *mut c_char, capacity: usize,
                                            length: *mut usize) -> i32;
        pub fn mobilellm_tokenize(model: *const c_void, text: *const c_char, length: usize, add_special: bool,
                                  parse_special: bool, tokens: *mut i32, capacity: usize, count: *mut usize) -> i32;
        pub fn mobilellm_detokenize(model: *const c_void, tokens: *const i32, n: usize, skip_special: bool,
                                    buffer: *mut c_char, capacity: usize, length: *mut usize) -> i32;
        pub fn mobilellm_chat_params_init(params: *mut ChatParams);
        pub fn mobilellm_apply_chat_template(model: *const c_void, messages: *const ChatMessage, n: usize,
                                             params: *const ChatParams, buffer: *mut c_char, capacity: usize,
                                             length: *mut usize) -> i32;
        pub fn mobilellm_session_params_init(params: *mut SessionParams);
        pub fn mobilellm_session_create(model: *mut c_void, params: *const SessionParams, out: *mut *mut c_void) -> i32;
        pub fn mobilellm_session_free(session: *mut c_void) -> i32;
        pub fn mobilellm_session_reset(session: *mut c_void) -> i32;
        pub fn mobilellm_session_rewind(session: *mut c_void, position: i32) -> i32;
        pub fn mobilellm_session_position(session: *const c_void, out: *mut i32) -> i32;
        pub fn mobilellm_session_eval(session: *mut c_void, tokens: *const i32, n: usize, mode: i32, logits: *mut f32,
                                      capacity: usize) -> i32;
        pub fn mobilellm_session_cancel(session: *mut c_void) -> i32;
        pub fn mobilellm_session_state_size(session: *const c_void, size: *mut usize) -> i32;
        pub fn mobilellm_session_save_state(session: *const c_void, buffer: *mut c_void, capacity: usize,
                                            size: *mut usize) -> i32;
        pub fn mobilellm_session_load_state(session: *mut c_void, buffer: *const c_void, size: usize) -> i32;
        pub fn mobilellm_sampler_params_init(params: *mut SamplerParams);
        pub fn mobilellm_generate_params_init_sized(params: *mut GenerateParams, size: usize);
        pub fn mobilellm_batch_event_pieces(batch: *mut c_void, index: usize, out_pieces: *mut *const Piece,
                                            out_count: *mut usize) -> i32;
        pub fn mobilellm_batch_result_channel_text(batch: *mut c_void, id: i32, channel: i32, buffer: *mut c_char,
                                                   capacity: usize, out_length: *mut usize) -> i32;
        pub fn mobilellm_batch_result_logprobs(batch: *mut c_void, id: i32, logprobs: *mut TokenLogprob,
                                               capacity: usize, out_count: *mut usize) -> i32;
        pub fn mobilellm_session_generate(session: *mut c_void, prompt: *const i32, n: usize,
                                          sampler: *const SamplerParams, params: *const GenerateParams,
                                          out: *mut i32, capacity: usize, result: *mut GenerateResult) -> i32;
        pub fn mobilellm_batch_params_init(params: *mut BatchParams);
        pub fn mobilellm_batch_create(model: *const c_void, params: *const BatchParams, out: *mut *mut c_void) -> i32;
        pub fn mobilellm_batch_free(batch: *mut c_void) -> i32;
        pub fn mobilellm_batch_add(batch: *mut c_void, prompt: *const i32, n: usize, sampler: *const SamplerParams,
                                   params: *const GenerateParams, n_samples: i32, out_ids: *mut i32) -> i32;
        pub fn mobilellm_batch_add_session(batch: *mut c_void, session: *mut c_void, prompt: *const i32, n: usize,
                                           sampler: *const SamplerParams, params: *const GenerateParams,
                                           out_id: *mut i32) -> i32;
        pub fn mobilellm_batch_step(batch: *mut c_void, events: *mut BatchEvent, capacity: usize, count: *mut usize) -> i32;
        pub fn mobilellm_batch_active_count(batch: *const c_void, count: *mut usize) -> i32;
        pub fn mobilellm_batch_cancel(batch: *mut c_void, id: i32) -> i32;
        pub fn mobilellm_batch_cancel_all(batch: *mut c_void) -> i32;
        pub fn mobilellm_batch_result(batch: *mut c_void, id: i32, tokens: *mut i32, capacity: usize, count: *mut usize,
                                      result: *mut GenerateResult) -> i32;
        pub fn mobilellm_batch_result_text(batch: *mut c_void, id: i32, buffer: *mut c_char, capacity: usize,
                                           length: *mut usize) -> i32;
        pub fn mobilellm_batch_forget(batch: *mut c_void, id: i32) -> i32;
        pub fn mobilellm_batch_logits(batch: *mut c_void, id: i32, logits: *mut f32, capacity: usize,
                                      count: *mut usize) -> i32;
    }
}

/// A failed call: the mobilellm_status and the library's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The MOBILELLM_ERROR_* code.
    pub status: i32,
    /// What failed (file, field or argument, and the value found).
    pub message: String,
}

impl Error {
    /// The status's constant name, e.g. "MOBILELLM_ERROR_CONTEXT_FULL".
    pub fn status_name(&self) -> String {
        unsafe { CStr::from_ptr(ffi::mobilellm_status_name(self.status)) }.to_string_lossy().into_owned()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status_name(), self.message)
    }
}

impl std::error::Error for Error {}

/// The wrapper's result type.
pub type Result<T> = std::result::Result<T, Error>;

fn check(status: i32) -> Result<()> {
    if status == ffi::MOBILELLM_OK {
        return Ok(());
    }
    let message = unsafe { CStr::from_ptr(ffi::mobilellm_last_error()) }.to_string_lossy().into_owned();
    Err(Error { status, message })
}

fn c_string(text: &str, name: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error { status: 1, message: format!("invalid argument '{name}': contains a NUL byte") })
}

/// Runs a caller-owned-buffer text call: once for the size, once for the text.
fn sized_text(call: impl Fn(*mut c_char, usize, *mut usize) -> i32) -> Result<String> {
    let mut length = 0usize;
    let status = call(ptr::null_mut(), 0, &mut length);
    if status != ffi::MOBILELLM_ERROR_BUFFER_TOO_SMALL {
        check(status)?;
    }
    let mut buffer = vec![0u8; length + 1];
    check(call(buffer.as_mut_ptr() as *mut c_char, buffer.len(), &mut length))?;
    buffer.truncate(length);
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// The library's ABI version.
pub fn abi_version() -> u32 {
    unsafe { ffi::mobilellm_abi_version() }
}

/// The library's version string.
pub fn version() -> String {
    unsafe { CStr::from_ptr(ffi::mobilellm_version_string()) }.to_string_lossy().into_owned()
}

/// The library's report of this machine: architecture, CPU features, instruction-set level, and the kernel each
/// weight type runs per mode (`mobilellm_system_info`).
pub fn system_info() -> String {
    unsafe { CStr::from_ptr(ffi::mobilellm_system_info()) }.to_string_lossy().into_owned()
}

/// How to load a model (the fields of `mobilellm_model_params` this wrapper exposes).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compute threads (None: every core).
    pub n_threads: Option<i32>,
    /// Quantize an unquantized model as it loads ("q8_0", "q4_0", ...; None: as stored).
    pub quantize: Option<String>,
    /// Lock the mapped model files in RAM (mlock); loading fails when RLIMIT_MEMLOCK is too low.
    pub use_mlock: bool,
    /// How block-quantized weights are multiplied: "exact" (f32 activations, the numbers transformers computes on
    /// the dequantized model), "int8" (8-bit activations for integer dot products: faster, drifts by the
    /// activation rounding) or "int16" (exact, with 16-bit activations in prefill on AVX-512 VNNI CPUs); None: the
    /// library's default ([`Model::activations`] reports it). Another name fails
    /// with an error naming `params->activations`. No effect on float weights.
    pub activations: Option<String>,
}

impl LoadOptions {
    /// Calls `body` with the C params (the quantize and activations strings live as long as the call).
    fn with_params<T>(&self, body: impl FnOnce(&ffi::ModelParams) -> Result<T>) -> Result<T> {
        let quantize = match &self.quantize {
            Some(name) => Some(c_string(name, "quantize")?),
            None => None,
        };
        let activations = match &self.activations {
            Some(name) => Some(c_string(name, "activations")?),
            None => None,
        };
        let mut params: ffi::ModelParams = unsafe { std::mem::zeroed() };
        unsafe { ffi::mobilellm_model_params_init(&mut params) };
        params.n_threads = self.n_threads.unwrap_or(0);
        params.quantize = quantize.as_ref().map_or(ptr::null(), |q| q.as_ptr());
        params.use_mlock = self.use_mlock;
        params.activations = activations.as_ref().map_or(ptr::null(), |a| a.as_ptr());
        body(&params)
    }
}

/// Estimates, from the model's headers only, the memory of loading `path` with `options` and filling one session
/// of `n_ctx` positions (0: the default): see `mobilellm_memory_estimate` for the fields (bytes).
pub fn estimate_memory(path: &str, options: &LoadOptions, n_ctx: i32) -> Result<ffi::MemoryEstimate> {
    let path = c_string(path, "path")?;
    options.with_params(|params| {
        let mut out = ffi::MemoryEstimate { struct_size: std::mem::size_of::<ffi::MemoryEstimate>() as u32, ..Default::default() };
        check(unsafe { ffi::mobilellm_model_estimate_memory(path.as_ptr(), params, n_ctx, &mut out) })?;
        Ok(out)
    })
}

/// A loaded model: immutable, shareable across threads.
pub struct Model {
    handle: *mut c_void,
    info: ffi::ModelInfo,
}

// The C ABI documents models as safe to share across threads.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    /// Loads a model directory with `n_threads` compute threads per session (None: every core).
    pub fn load(path: &str, n_threads: Option<i32>) -> Result<Model> {
        Model::load_with(path, &LoadOptions { n_threads, ..Default::default() })
    }

    /// Loads a model with `options`.
    pub fn load_with(path: &str, options: &LoadOptions) -> Result<Model> {
        let path = c_string(path, "path")?;
        let mut handle = ptr::null_mut();
        options.with_params(|params| check(unsafe { ffi::mobilellm_model_load(path.as_ptr(), params, &mut handle) }))?;
        let mut info = ffi::ModelInfo { struct_size: std::mem::size_of::<ffi::ModelInfo>() as u32, ..Default::default() };
        if let Err(error) = check(unsafe { ffi::mobilellm_model_get_info(handle, &mut info) }) {
            unsafe { ffi::mobilellm_model_free(handle) };
            return Err(error);
        }
        Ok(Model { handle, info })
    }

    /// Facts about the model.
    pub fn info(&self) -> ffi::ModelInfo {
        self.info
    }

    /// Vocabulary size (length of a logits row).
    pub fn vocab_size(&self) -> usize {
        self.info.vocab_size as usize
    }

    /// How block-quantized weights are multiplied: "exact", "int8" or "int16" ([`LoadOptions::activations`], or the
    /// library's default).
    pub fn activations(&self) -> String {
        if self.info.activations.is_null() {
            return String::new();
        }
        // A static string owned by the library, valid for the life of the process.
        unsafe { CStr::from_ptr(self.info.activations) }.to_string_lossy().into_owned()
    }

    /// End-of-sequence ids.
    pub fn eos_token_ids(&self) -> Result<Vec<i32>> {
        let mut ids = vec![0i32; self.info.n_eos_token_ids.max(1) as usize];
        let mut count = 0usize;
        check(unsafe { ffi::mobilellm_model_eos_token_ids(self.handle, ids.as_mut_ptr(), ids.len(), &mut count) })?;
        ids.truncate(count);
        Ok(ids)
    }

    /// A metadata string ("architecture", "path", "kv_cache_type", "bos_token", "eos_token", "chat_template").
    pub fn metadata(&self, key: &str) -> Result<String> {
        let key = c_string(key, "key")?;
        sized_text(|b, n, out| unsafe { ffi::mobilellm_model_get_metadata(self.handle, key.as_ptr(), b, n, out) })
    }

    /// Token ids of `text`.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<i32>> {
        let mut ids = vec![0i32; text.len() + 8];
        let mut count = 0usize;
        let call = |ids: &mut Vec<i32>, count: &mut usize| unsafe {
            ffi::mobilellm_tokenize(self.handle, text.as_ptr() as *const c_char, text.len(), add_special, parse_special,
                                    ids.as_mut_ptr(), ids.len(), count)
        };
        let mut status = call(&mut ids, &mut count);
        if status == ffi::MOBILELLM_ERROR_BUFFER_TOO_SMALL {
            ids.resize(count, 0);
            status = call(&mut ids, &mut count);
        }
        check(status)?;
        ids.truncate(count);
        Ok(ids)
    }

    /// The text of `ids`.
    pub fn detokenize(&self, ids: &[i32], skip_special: bool) -> Result<String> {
        sized_text(|b, n, out| unsafe { ffi::mobilellm_detokenize(self.handle, ids.as_ptr(), ids.len(), skip_special, b, n, out) })
    }

    /// Renders (role, content) messages with the model's chat template.
    pub fn apply_chat_template(&self, messages: &[(&str, &str)], add_generation_prompt: bool) -> Result<String> {
        let owned: Vec<(CString, CString)> = messages
            .iter()
            .map(|(r, c)| Ok((c_string(r, "role")?, c_string(c, "content")?)))
            .collect::<Result<_>>()?;
        let raw: Vec<ffi::ChatMessage> =
            owned.iter().map(|(r, c)| ffi::ChatMessage { role: r.as_ptr(), content: c.as_ptr() }).collect();
        let mut params: ffi::ChatParams = unsafe { std::mem::zeroed() };
        unsafe { ffi::mobilellm_chat_params_init(&mut params) };
        params.add_generation_prompt = add_generation_prompt;
        sized_text(|b, n, out| unsafe {
            ffi::mobilellm_apply_chat_template(self.handle, raw.as_ptr(), raw.len(), &params, b, n, out)
        })
    }

    /// A new session with an `n_ctx`-token KV cache (0: the model's default).
    pub fn session(&self, n_ctx: i32) -> Result<Session> {
        let mut params: ffi::SessionParams = unsafe { std::mem::zeroed() };
        unsafe { ffi::mobilellm_session_params_init(&mut params) };
        params.n_ctx = n_ctx;
        let mut handle = ptr::null_mut();
        check(unsafe { ffi::mobilellm_session_create(self.handle, &params, &mut handle) })?;
        Ok(Session { handle, vocab: self.vocab_size() })
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { ffi::mobilellm_model_free(self.handle) };
    }
}

/// Sampling settings (greedy by default).
#[derive(Debug, Clone, Copy)]
pub struct Sampling(pub ffi::SamplerParams);

impl Default for Sampling {
    fn default() -> Self {
        let mut params: ffi::SamplerParams = unsafe { std::mem::zeroed() };
        unsafe { ffi::mobilellm_sampler_params_init(&mut params) };
        Sampling(params)
    }
}

impl Sampling {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::default()
    }
    /// Temperature + nucleus sampling with a seed.
    pub fn seeded(temperature: f32, top_p: f32, seed: u64) -> Self {
        let mut s = Self::default();
        s.0.temperature = temperature;
        s.0.top_p = top_p;
        s.0.seed = seed;
        s.0.use_seed = true;
        s
    }
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generated ids (a stopping EOS included).
    pub tokens: Vec<i32>,
    /// 1 eos, 2 max_tokens, 3 context_full, 4 callback, 5 stop string, 6 cancelled (batch sequences).
    pub stop_reason: i32,
}

/// One conversation; used through `&mut self`, one thread at a time.
pub struct Session {
    handle: *mut c_void,
    vocab: usize,
}

// A session may move between threads; `&mut self` keeps it to one at a time.
unsafe impl Send for Session {}

/// Cancels a session from any thread. Harmless after the session is dropped (then it returns an error).
#[derive(Debug, Clone, Copy)]
pub struct CancelHandle(usize);

impl CancelHandle {
    /// Stops the eval/generate running on the session (which then fails with MOBILELLM_ERROR_CANCELLED); does
    /// nothing when none is running.
    pub fn cancel(&self) -> Result<()> {
        check(unsafe { ffi::mobilellm_session_cancel(self.0 as *mut c_void) })
    }
}

impl Session {
    /// Feeds tokens; returns the last position's logits (or every position's with `all`).
    pub fn eval(&mut self, tokens: &[i32], all: bool) -> Result<Vec<f32>> {
        let rows = if all { tokens.len() } else { 1 };
        let mut logits = vec![0f32; rows * self.vocab];
        let mode = if all { ffi::MOBILELLM_LOGITS_ALL } else { ffi::MOBILELLM_LOGITS_LAST };
        check(unsafe {
            ffi::mobilellm_session_eval(self.handle, tokens.as_ptr(), tokens.len(), mode, logits.as_mut_ptr(), logits.len())
        })?;
        Ok(logits)
    }

    /// Generates up to `max_tokens` from `prompt` (empty: continue); `on_token(id, text)` returns false to stop.
    pub fn generate<F: FnMut(i32, &str) -> bool>(&mut self, prompt: &[i32], max_tokens: i32, sampling: Sampling,
                                                 ignore_eos: bool, mut on_token: F) -> Result<Generation> {
        unsafe extern "C" fn trampoline<F: FnMut(i32, &str) -> bool>(token: i32, piece: *const c_char, length: usize,
                                                                    user_data: *mut c_void) -> bool {
            let callback = &mut *(user_data as *mut F);
            let text = if piece.is_null() {
                ""
            } else {
                std::str::from_utf8(std::slice::from_raw_parts(piece as *const u8, length)).unwrap_or("")
            };
            // A panic must not unwind into C: catch it and stop.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(token, text))).unwrap_or(false)
        }
        let mut params = default_generate_params();
        params.max_tokens = max_tokens;
        params.ignore_eos = ignore_eos;
        params.callback = Some(trampoline::<F>);
        params.user_data = &mut on_token as *mut F as *mut c_void;
        let capacity = (max_tokens.max(0) as usize).min(1 << 20).max(1);
        let mut tokens = vec![0i32; capacity];
        let mut result = ffi::GenerateResult { struct_size: std::mem::size_of::<ffi::GenerateResult>() as u32, ..Default::default() };
        check(unsafe {
            ffi::mobilellm_session_generate(self.handle, prompt.as_ptr(), prompt.len(), &sampling.0, &params,
                                            tokens.as_mut_ptr(), tokens.len(), &mut result)
        })?;
        tokens.truncate((result.n_tokens.max(0) as usize).min(capacity));
        Ok(Generation { tokens, stop_reason: result.stop_reason })
    }

    /// Empties the session.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { ffi::mobilellm_session_reset(self.handle) })
    }

    /// Runs later evals and generations on `n_threads` threads of the model's pool (0: all); results are identical
    /// for every count.
    pub fn set_threads(&mut self, n_threads: i32) -> Result<()> {
        check(unsafe { ffi::mobilellm_session_set_threads(self.handle, n_threads) })
    }

    /// Keeps the first `position` tokens.
    pub fn rewind(&mut self, position: i32) -> Result<()> {
        check(unsafe { ffi::mobilellm_session_rewind(self.handle, position) })
    }

    /// Tokens in the KV cache.
    pub fn position(&self) -> Result<i32> {
        let mut position = 0;
        check(unsafe { ffi::mobilellm_session_position(self.handle, &mut position) })?;
        Ok(position)
    }

    /// A handle that cancels this session from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.handle as usize)
    }

    /// The tokens and KV cache as bytes.
    pub fn save_state(&self) -> Result<Vec<u8>> {
        let mut size = 0usize;
        check(unsafe { ffi::mobilellm_session_state_size(self.handle, &mut size) })?;
        let mut bytes = vec![0u8; size];
        check(unsafe { ffi::mobilellm_session_save_state(self.handle, bytes.as_mut_ptr() as *mut c_void, size, &mut size) })?;
        bytes.truncate(size);
        Ok(bytes)
    }

    /// Restores bytes from `save_state`.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        check(unsafe { ffi::mobilellm_session_load_state(self.handle, bytes.as_ptr() as *const c_void, bytes.len()) })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        unsafe { ffi::mobilellm_session_free(self.handle) };
    }
}

/// Settings of a [`Batch`] (mobilellm_batch_params; the library's defaults by default).
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings(pub ffi::BatchParams);

impl Default for BatchSettings {
    fn default() -> Self {
        let mut params: ffi::BatchParams = unsafe { std::mem::zeroed() };
        unsafe { ffi::mobilellm_batch_params_init(&mut params) };
        BatchSettings(params)
    }
}

impl BatchSettings {
    /// The defaults with `n_ctx` positions per sequence (0: the model's default context length).
    pub fn with_context(n_ctx: i32) -> Self {
        let mut settings = Self::default();
        settings.0.n_ctx = n_ctx;
        settings
    }
}

/// What happened to a batch sequence in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchEvent {
    /// Sequence `sequence` produced `token`; `text` is the text it completes when the sequence streams text.
    Token {
        /// The sequence's id.
        sequence: i32,
        /// The token.
        token: i32,
        /// The text piece (None unless the sequence streams text).
        text: Option<String>,
    },
    /// Sequence `sequence` ended; read its tokens with [`Batch::result`].
    Finished {
        /// The sequence's id.
        sequence: i32,
        /// A mobilellm_stop_reason (6: cancelled).
        stop_reason: i32,
        /// Tokens generated.
        n_tokens: i32,
        /// The held-back text released at the end (None unless the sequence streams text).
        text: Option<String>,
    },
}

impl BatchEvent {
    /// The sequence the event is about.
    pub fn sequence(&self) -> i32 {
        match self {
            BatchEvent::Token { sequence, .. } | BatchEvent::Finished { sequence, .. } => *sequence,
        }
    }
}

/// Many generations of one model advanced together (mobilellm_batch): each [`Batch::step`] is one forward pass
/// over every running sequence. Used through `&mut self` (one thread at a time); [`BatchCancelHandle`] cancels from
/// any thread. Keeps its model alive.
pub struct Batch {
    handle: *mut c_void,
}

// A batch may move between threads; `&mut self` keeps it to one at a time.
unsafe impl Send for Batch {}

/// Cancels a batch's sequences from any thread. Harmless after the batch is dropped (then it returns an error).
#[derive(Debug, Clone, Copy)]
pub struct BatchCancelHandle(usize);

impl BatchCancelHandle {
    /// Asks sequence `id` to stop (it finishes as cancelled at the next step).
    pub fn cancel(&self, id: i32) -> Result<()> {
        check(unsafe { ffi::mobilellm_batch_cancel(self.0 as *mut c_void, id) })
    }
    /// Asks every sequence added so far to stop.
    pub fn cancel_all(&self) -> Result<()> {
        check(unsafe { ffi::mobilellm_batch_cancel_all(self.0 as *mut c_void) })
    }
}

/// The generate params of a batch sequence (no callback: tokens arrive as events).
fn batch_generate_params(max_tokens: i32, ignore_eos: bool) -> ffi::GenerateParams {
    let mut params = default_generate_params();
    params.max_tokens = max_tokens;
    params.ignore_eos = ignore_eos;
    params
}

/// A copy of an event's text (None when the library gave none).
unsafe fn event_text(text: *const c_char, length: usize) -> Option<String> {
    if text.is_null() {
        return None;
    }
    Some(String::from_utf8_lossy(std::slice::from_raw_parts(text as *const u8, length)).into_owned())
}

impl Batch {
    /// An empty batch of `model`.
    pub fn new(model: &Model, settings: BatchSettings) -> Result<Batch> {
        let mut handle = ptr::null_mut();
        check(unsafe { ffi::mobilellm_batch_create(model.handle, &settings.0, &mut handle) })?;
        Ok(Batch { handle })
    }

    /// Adds `n_samples` sequences continuing `prompt` (fed once, forked for the others; with a seed, sample i
    /// uses seed + i) and returns their ids.
    pub fn add(&mut self, prompt: &[i32], max_tokens: i32, sampling: Sampling, ignore_eos: bool, n_samples: i32)
               -> Result<Vec<i32>> {
        let params = batch_generate_params(max_tokens, ignore_eos);
        // Room for the ids the library may write; an implausible count gets no buffer and is refused by the library.
        let mut ids = vec![0i32; if (1..=1 << 20).contains(&n_samples) { n_samples as usize } else { 0 }];
        let out = if ids.is_empty() { ptr::null_mut() } else { ids.as_mut_ptr() };
        check(unsafe {
            ffi::mobilellm_batch_add(self.handle, prompt.as_ptr(), prompt.len(), &sampling.0, &params, n_samples, out)
        })?;
        Ok(ids)
    }

    /// Adds a sequence on an existing session (an empty prompt continues from its last token); returns its id.
    /// The session belongs to the batch until the sequence finishes (calls on it wait for a running step).
    pub fn add_session(&mut self, session: &mut Session, prompt: &[i32], max_tokens: i32, sampling: Sampling,
                       ignore_eos: bool) -> Result<i32> {
        let params = batch_generate_params(max_tokens, ignore_eos);
        let mut id = -1;
        check(unsafe {
            ffi::mobilellm_batch_add_session(self.handle, session.handle, prompt.as_ptr(), prompt.len(), &sampling.0,
                                             &params, &mut id)
        })?;
        Ok(id)
    }

    /// Runs one step and returns all its events (none when no sequence is left).
    pub fn step(&mut self) -> Result<Vec<BatchEvent>> {
        let capacity = 2 * self.active_count()? + 2;
        let mut raw: Vec<ffi::BatchEvent> = vec![unsafe { std::mem::zeroed() }; capacity];
        let mut count = 0usize;
        check(unsafe { ffi::mobilellm_batch_step(self.handle, raw.as_mut_ptr(), raw.len(), &mut count) })?;
        Ok(raw[..count.min(capacity)]
            .iter()
            .map(|e| {
                // The text stays valid until the next step; copied now.
                let text = unsafe { event_text(e.text, e.text_length) };
                if e.kind == ffi::MOBILELLM_BATCH_EVENT_FINISHED {
                    BatchEvent::Finished { sequence: e.sequence, stop_reason: e.stop_reason, n_tokens: e.n_tokens, text }
                } else {
                    BatchEvent::Token { sequence: e.sequence, token: e.token, text }
                }
            })
            .collect())
    }

    /// Steps until every sequence has finished, calling `on_event` for each event; returning false cancels every
    /// sequence (they finish as cancelled, reported too).
    pub fn run<F: FnMut(&BatchEvent) -> bool>(&mut self, mut on_event: F) -> Result<()> {
        loop {
            let events = self.step()?;
            if events.is_empty() {
                return Ok(());
            }
            for event in &events {
                if !on_event(event) {
                    self.cancel_all()?;
                }
            }
        }
    }

    /// Sequences not yet finished.
    pub fn active_count(&self) -> Result<usize> {
        let mut count = 0usize;
        check(unsafe { ffi::mobilellm_batch_active_count(self.handle, &mut count) })?;
        Ok(count)
    }

    /// Asks sequence `id` to stop.
    pub fn cancel(&self, id: i32) -> Result<()> {
        self.cancel_handle().cancel(id)
    }

    /// Asks every sequence added so far to stop.
    pub fn cancel_all(&self) -> Result<()> {
        self.cancel_handle().cancel_all()
    }

    /// Runs later steps on `n_threads` threads of the model's pool (0: all); results are identical for every count.
    pub fn set_threads(&mut self, n_threads: i32) -> Result<()> {
        check(unsafe { ffi::mobilellm_batch_set_threads(self.handle, n_threads) })
    }

    /// A handle that cancels this batch's sequences from any thread.
    pub fn cancel_handle(&self) -> BatchCancelHandle {
        BatchCancelHandle(self.handle as usize)
    }

    /// The tokens and stop reason of finished sequence `id`.
    pub fn result(&mut self, id: i32) -> Result<Generation> {
        let mut count = 0usize;
        let status = unsafe { ffi::mobilellm_batch_result(self.handle, id, ptr::null_mut(), 0, &mut count, ptr::null_mut()) };
        if status != ffi::MOBILELLM_ERROR_BUFFER_TOO_SMALL {
            check(status)?;
        }
        let mut tokens = vec![0i32; count];
        let mut result = ffi::GenerateResult { struct_size: std::mem::size_of::<ffi::GenerateResult>() as u32, ..Default::default() };
        check(unsafe { ffi::mobilellm_batch_result(self.handle, id, tokens.as_mut_ptr(), tokens.len(), &mut count, &mut result) })?;
        tokens.truncate(count);
        Ok(Generation { tokens, stop_reason: result.stop_reason })
    }

    /// The text of finished sequence `id` ("" unless it streamed text).
    pub fn text(&mut self, id: i32) -> Result<String> {
        let handle = self.handle;
        sized_text(|b, n, out| unsafe { ffi::mobilellm_batch_result_text(handle, id, b, n, out) })
    }

    /// Releases the kept result of finished sequence `id`.
    pub fn forget(&mut self, id: i32) -> Result<()> {
        check(unsafe { ffi::mobilellm_batch_forget(self.handle, id) })
    }

    /// The logits sequence `id` sampled from in the latest step (needs `keep_logits` in the settings).
    pub fn logits(&mut self, id: i32) -> Result<Vec<f32>> {
        let mut count = 0usize;
        let status = unsafe { ffi::mobilellm_batch_logits(self.handle, id, ptr::null_mut(), 0, &mut count) };
        if status != ffi::MOBILELLM_ERROR_BUFFER_TOO_SMALL {
            check(status)?;
        }
        let mut values = vec![0f32; count];
        check(unsafe { ffi::mobilellm_batch_logits(self.handle, id, values.as_mut_ptr(), values.len(), &mut count) })?;
        values.truncate(count);
        Ok(values)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        unsafe { ffi::mobilellm_batch_free(self.handle) };
    }
}

// ---- Output control (grammar, JSON Schema, logit bias, logprobs, reasoning) ----

/// mobilellm_generate_params with the library's defaults for the whole current layout.
fn default_generate_params() -> ffi::GenerateParams {
    let mut params: ffi::GenerateParams = unsafe { std::mem::zeroed() };
    unsafe { ffi::mobilellm_generate_params_init_sized(&mut params, std::mem::size_of::<ffi::GenerateParams>()) };
    params
}

/// How a reasoning model's thought is tracked and bounded (see mobilellm_generate_params.reasoning).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reasoning {
    /// Most reasoning tokens before the library feeds `closing` (None: no limit).
    pub budget: Option<i32>,
    /// The start marker (None: "<think>").
    pub start: Option<String>,
    /// The end marker (None: "</think>").
    pub end: Option<String>,
    /// The text fed when the budget runs out; must contain the end marker (None: the library's default).
    pub closing: Option<String>,
}

/// Output control for [`Session::generate_controlled`] and [`Batch::add_controlled`]: every field maps to one of
/// mobilellm_generate_params' fields, and the library validates every value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    /// Strings that end generation (the text ends before the first to appear).
    pub stop_strings: Vec<String>,
    /// A GBNF grammar the output must match.
    pub grammar: Option<String>,
    /// A JSON Schema (JSON text) the output must match.
    pub json_schema: Option<String>,
    /// Values added to token logits by id (`f32::NEG_INFINITY` bans the token).
    pub logit_bias: Vec<(i32, f32)>,
    /// Values added to the logits of every token whose text equals the string.
    pub logit_bias_pieces: Vec<(String, f32)>,
    /// Log-probabilities with this many alternatives (0...20) per generated token.
    pub logprobs: Option<i32>,
    /// Log-probabilities of the raw logits instead of the distribution sampled from.
    pub raw_logprobs: bool,
    /// Track the thought (reasoning / answer channels) and optionally bound it.
    pub reasoning: Option<Reasoning>,
}

/// A generated token's log-probability and the most likely alternatives (most likely first).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token.
    pub token: i32,
    /// Its natural-log probability.
    pub logprob: f32,
    /// `(token, logprob)` of the most likely tokens.
    pub top: Vec<(i32, f32)>,
}

impl TokenLogprob {
    fn from_ffi(value: &ffi::TokenLogprob) -> TokenLogprob {
        let n = (value.n_top.max(0) as usize).min(ffi::MOBILELLM_MAX_TOP_LOGPROBS);
        TokenLogprob {
            token: value.token,
            logprob: value.logprob,
            top: (0..n).map(|i| (value.top_tokens[i], value.top_logprobs[i])).collect(),
        }
    }
}

/// Where a piece of text belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The answer (all text without reasoning tracking).
    Answer,
    /// Inside the thought, markers excluded.
    Reasoning,
    /// A start or end marker itself.
    Marker,
}

impl Channel {
    fn from_ffi(value: i32) -> Channel {
        match value {
            ffi::MOBILELLM_CHANNEL_REASONING => Channel::Reasoning,
            ffi::MOBILELLM_CHANNEL_MARKER => Channel::Marker,
            _ => Channel::Answer,
        }
    }
}

/// One piece of streamed text.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The token it completes (-1 for text released at the end).
    pub token: i32,
    /// Where it belongs.
    pub channel: Channel,
    /// The text (whole UTF-8 characters).
    pub text: String,
    /// The token's log-probabilities (first piece of a token, when requested).
    pub logprob: Option<TokenLogprob>,
}

impl Piece {
    /// A copy of a C piece.
    unsafe fn from_ffi(piece: &ffi::Piece) -> Piece {
        Piece {
            token: piece.token,
            channel: Channel::from_ffi(piece.channel),
            text: event_text(piece.text, piece.text_length).unwrap_or_default(),
            logprob: piece.logprob.as_ref().map(TokenLogprob::from_ffi),
        }
    }
}

/// What a controlled generation produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// Generated ids (a stopping EOS and forced closing tokens included).
    pub tokens: Vec<i32>,
    /// A mobilellm_stop_reason (7: the grammar completed).
    pub stop_reason: i32,
    /// The whole text, and its thought and answer parts (markers excluded).
    pub text: String,
    /// The thought.
    pub reasoning: String,
    /// The answer.
    pub answer: String,
    /// Generated tokens inside the thought.
    pub reasoning_tokens: i32,
    /// Where the reasoning budget ran out (an index into `tokens`), if it did.
    pub reasoning_budget_index: Option<i32>,
    /// One entry per token when `Control::logprobs` is set.
    pub logprobs: Vec<TokenLogprob>,
}

/// A mobilellm_generate_params for a `Control` with the C strings and arrays it points into (alive as long as it).
struct ControlParams {
    params: ffi::GenerateParams,
    _strings: Vec<CString>,
    _pointers: Vec<Vec<*const c_char>>,
    _bias: (Vec<i32>, Vec<f32>, Vec<f32>),
}

impl ControlParams {
    fn new(max_tokens: i32, ignore_eos: bool, control: &Control) -> Result<ControlParams> {
        let mut params = default_generate_params();
        params.max_tokens = max_tokens;
        params.ignore_eos = ignore_eos;
        let mut strings = Vec::new();
        let mut c = |text: &str, name: &str| -> Result<*const c_char> {
            let value = c_string(text, name)?;
            let pointer = value.as_ptr();
            strings.push(value);
            Ok(pointer)
        };
        let stops = control.stop_strings.iter().map(|s| c(s, "stop_strings")).collect::<Result<Vec<_>>>()?;
        let pieces = control.logit_bias_pieces.iter().map(|(s, _)| c(s, "logit_bias_pieces")).collect::<Result<Vec<_>>>()?;
        if let Some(grammar) = &control.grammar {
            params.grammar = c(grammar, "grammar")?;
        }
        if let Some(schema) = &control.json_schema {
            params.json_schema = c(schema, "json_schema")?;
        }
        if let Some(reasoning) = &control.reasoning {
            params.reasoning = true;
            params.reasoning_budget = reasoning.budget.unwrap_or(-1);
            if let Some(start) = &reasoning.start {
                params.reasoning_start = c(start, "reasoning.start")?;
            }
            if let Some(end) = &reasoning.end {
                params.reasoning_end = c(end, "reasoning.end")?;
            }
            if let Some(closing) = &reasoning.closing {
                params.reasoning_closing = c(closing, "reasoning.closing")?;
            }
        }
        let bias_tokens: Vec<i32> = control.logit_bias.iter().map(|(t, _)| *t).collect();
        let bias_values: Vec<f32> = control.logit_bias.iter().map(|(_, v)| *v).collect();
        let piece_values: Vec<f32> = control.logit_bias_pieces.iter().map(|(_, v)| *v).collect();
        if !stops.is_empty() {
            params.stop_strings = stops.as_ptr();
            params.n_stop_strings = stops.len();
        }
        if !bias_tokens.is_empty() {
            params.logit_bias_tokens = bias_tokens.as_ptr();
            params.logit_bias_values = bias_values.as_ptr();
            params.n_logit_bias = bias_tokens.len();
        }
        if !pieces.is_empty() {
            params.logit_bias_pieces = pieces.as_ptr();
            params.logit_bias_piece_values = piece_values.as_ptr();
            params.n_logit_bias_pieces = pieces.len();
        }
        params.n_logprobs = control.logprobs.unwrap_or(-1);
        params.raw_logprobs = control.raw_logprobs;
        Ok(ControlParams { params, _strings: strings, _pointers: vec![stops, pieces], _bias: (bias_tokens, bias_values, piece_values) })
    }
}

impl Session {
    /// Generates with output control, streaming every piece of text to `on_piece` (return false to stop). Needs a
    /// model with a tokenizer. The output carries the text split into reasoning and answer, and the logprobs.
    pub fn generate_controlled<F: FnMut(&Piece) -> bool>(&mut self, prompt: &[i32], max_tokens: i32, sampling: Sampling,
                                                         ignore_eos: bool, control: &Control, on_piece: F)
                                                         -> Result<Output> {
        struct Context<F> {
            on_piece: F,
            output: Output,
        }
        unsafe extern "C" fn trampoline<F: FnMut(&Piece) -> bool>(piece: *const ffi::Piece, user_data: *mut c_void) -> bool {
            let context = &mut *(user_data as *mut Context<F>);
            let piece = Piece::from_ffi(&*piece);
            context.output.text.push_str(&piece.text);
            match piece.channel {
                Channel::Reasoning => context.output.reasoning.push_str(&piece.text),
                Channel::Answer => context.output.answer.push_str(&piece.text),
                Channel::Marker => {}
            }
            // A panic must not unwind into C: catch it and stop.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (context.on_piece)(&piece))).unwrap_or(false)
        }
        let mut request = ControlParams::new(max_tokens, ignore_eos, control)?;
        let mut context = Context { on_piece, output: Output::default() };
        request.params.piece_callback = Some(trampoline::<F>);
        request.params.user_data = &mut context as *mut Context<F> as *mut c_void;
        let capacity = (max_tokens.max(0) as usize).min(1 << 20).max(1);
        let mut tokens = vec![0i32; capacity];
        let mut logprobs: Vec<ffi::TokenLogprob> = Vec::new();
        if control.logprobs.is_some() {
            logprobs = vec![unsafe { std::mem::zeroed() }; capacity];
            request.params.out_logprobs = logprobs.as_mut_ptr();
            request.params.out_logprobs_capacity = capacity;
        }
        let mut result = ffi::GenerateResult { struct_size: std::mem::size_of::<ffi::GenerateResult>() as u32, ..Default::default() };
        check(unsafe {
            ffi::mobilellm_session_generate(self.handle, prompt.as_ptr(), prompt.len(), &sampling.0, &request.params,
                                            tokens.as_mut_ptr(), tokens.len(), &mut result)
        })?;
        let n = (result.n_tokens.max(0) as usize).min(capacity);
        tokens.truncate(n);
        let mut output = context.output;
        output.tokens = tokens;
        output.stop_reason = result.stop_reason;
        output.reasoning_tokens = result.n_reasoning_tokens;
        output.reasoning_budget_index = (result.reasoning_budget_index >= 0).then_some(result.reasoning_budget_index);
        output.logprobs = logprobs.iter().take(n).map(TokenLogprob::from_ffi).collect();
        Ok(output)
    }
}

impl Batch {
    /// Adds `n_samples` sequences like [`Batch::add`], with output control (their text streams as event pieces:
    /// see [`Batch::event_pieces`]).
    pub fn add_controlled(&mut self, prompt: &[i32], max_tokens: i32, sampling: Sampling, ignore_eos: bool, n_samples: i32,
                          control: &Control) -> Result<Vec<i32>> {
        let request = ControlParams::new(max_tokens, ignore_eos, control)?;
        let mut ids = vec![0i32; if (1..=1 << 20).contains(&n_samples) { n_samples as usize } else { 0 }];
        let out = if ids.is_empty() { ptr::null_mut() } else { ids.as_mut_ptr() };
        check(unsafe {
            ffi::mobilellm_batch_add(self.handle, prompt.as_ptr(), prompt.len(), &sampling.0, &request.params, n_samples, out)
        })?;
        Ok(ids)
    }

    /// The pieces of event `index` of the latest step, split by channel (empty for a sequence without text).
    /// Call it after [`Batch::step`] and before the next step.
    pub fn event_pieces(&mut self, index: usize) -> Result<Vec<Piece>> {
        let mut pieces: *const ffi::Piece = ptr::null();
        let mut count = 0usize;
        check(unsafe { ffi::mobilellm_batch_event_pieces(self.handle, index, &mut pieces, &mut count) })?;
        if pieces.is_null() {
            return Ok(Vec::new());
        }
        Ok(unsafe { std::slice::from_raw_parts(pieces, count) }.iter().map(|p| unsafe { Piece::from_ffi(p) }).collect())
    }

    /// Everything finished sequence `id` produced: tokens, text split by channel, logprobs.
    pub fn output(&mut self, id: i32) -> Result<Output> {
        let handle = self.handle;
        let mut count = 0usize;
        let status = unsafe { ffi::mobilellm_batch_result(handle, id, ptr::null_mut(), 0, &mut count, ptr::null_mut()) };
        if status != ffi::MOBILELLM_ERROR_BUFFER_TOO_SMALL {
            check(status)?;
        }
        let mut tokens = vec![0i32; count];
        let mut result = ffi::GenerateResult { struct_size: std::mem::size_of::<ffi::GenerateResult>() as u32, ..Default::default() };
        check(unsafe { ffi::mobilellm_batch_result(handle, id, tokens.as_mut_ptr(), tokens.len(), &mut count, &mut result) })?;
        tokens.truncate(count);
        let channel = |which: i32| {
            sized_text(|b, n, out| unsafe { ffi::mobilellm_batch_result_channel_text(handle, id, which, b, n, out) })
        };
        let mut n = 0usize;
        let status = unsafe { ffi::mobilellm_batch_result_logprobs(handle, id, ptr::null_mut(), 0, &mut n) };
        if status != ffi::MOBILELLM_ERROR_BUFFER_TOO_SMALL {
            check(status)?;
        }
        let mut logprobs: Vec<ffi::TokenLogprob> = vec![unsafe { std::mem::zeroed() }; n];
        if n > 0 {
            check(unsafe { ffi::mobilellm_batch_result_logprobs(handle, id, logprobs.as_mut_ptr(), n, &mut n) })?;
        }
        Ok(Output {
            tokens,
            stop_reason: result.stop_reason,
            text: self.text(id)?,
            reasoning: channel(ffi::MOBILELLM_CHANNEL_REASONING)?,
            answer: channel(ffi::MOBILELLM_CHANNEL_ANSWER)?,
            reasoning_tokens: result.n_reasoning_tokens,
            reasoning_budget_index: (result.reasoning_budget_index >= 0).then_some(result.reasoning_budget_index),
            logprobs: logprobs.iter().take(n).map(TokenLogprob::from_ffi).collect(),
        })
    }
}
