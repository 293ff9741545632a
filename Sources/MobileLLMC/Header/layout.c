// Compile-time checks of include/mobilellm.h: the version-1 layout of every struct. Changing a field's offset fails
// this build; that is an ABI break and needs MOBILELLM_ABI_VERSION bumped (and these numbers, abi/abi-v<N>.txt and
// the struct_size minimums in Sources/MobileLLMC/Shell updated). A field appended at the end keeps every offset
// (the struct_size minimum stays the first release's size): its offset is checked here and the new size recorded
// as an "appended" line in abi/abi-v<N>.txt. Layouts assume LP64.
#include "../../../include/mobilellm.h"

#if defined(__LP64__)
#define CHECK(type, field, offset) _Static_assert(__builtin_offsetof(type, field) == (offset), #type "." #field)
#define SIZE(type, size) _Static_assert(sizeof(type) == (size), "sizeof " #type)

SIZE(mobilellm_model_params, 56); /* 40 as first released; use_mlock, then activations appended */
CHECK(mobilellm_model_params, n_threads, 4);
CHECK(mobilellm_model_params, default_context_length, 8);
CHECK(mobilellm_model_params, quantize, 16);
CHECK(mobilellm_model_params, progress_callback, 24);
CHECK(mobilellm_model_params, progress_user_data, 32);
CHECK(mobilellm_model_params, use_mlock, 40);
CHECK(mobilellm_model_params, activations, 48);

SIZE(mobilellm_model_info, 64); /* 52 as first released; activations appended */
CHECK(mobilellm_model_info, vocab_size, 4);
CHECK(mobilellm_model_info, n_eos_token_ids, 44);
CHECK(mobilellm_model_info, has_tokenizer, 48);
CHECK(mobilellm_model_info, is_quantized, 50);
CHECK(mobilellm_model_info, activations, 56);

SIZE(mobilellm_session_params, 12);
CHECK(mobilellm_session_params, kv_cache_type, 8);

SIZE(mobilellm_sampler_params, 56);
CHECK(mobilellm_sampler_params, temperature, 4);
CHECK(mobilellm_sampler_params, penalty_window, 32);
CHECK(mobilellm_sampler_params, seed, 40);
CHECK(mobilellm_sampler_params, use_seed, 48);

SIZE(mobilellm_generate_params, 192); /* 48 as first released; stop strings, then output control appended */
CHECK(mobilellm_generate_params, max_tokens, 4);
CHECK(mobilellm_generate_params, stop_token_ids, 8);
CHECK(mobilellm_generate_params, n_stop_token_ids, 16);
CHECK(mobilellm_generate_params, ignore_eos, 24);
CHECK(mobilellm_generate_params, callback, 32);
CHECK(mobilellm_generate_params, user_data, 40);
CHECK(mobilellm_generate_params, stop_strings, 48);
CHECK(mobilellm_generate_params, n_stop_strings, 56);
CHECK(mobilellm_generate_params, grammar, 64);
CHECK(mobilellm_generate_params, json_schema, 72);
CHECK(mobilellm_generate_params, logit_bias_tokens, 80);
CHECK(mobilellm_generate_params, logit_bias_values, 88);
CHECK(mobilellm_generate_params, n_logit_bias, 96);
CHECK(mobilellm_generate_params, n_logprobs, 104);
CHECK(mobilellm_generate_params, raw_logprobs, 108);
CHECK(mobilellm_generate_params, reasoning, 109);
CHECK(mobilellm_generate_params, reasoning_budget, 112);
CHECK(mobilellm_generate_params, reasoning_start, 120);
CHECK(mobilellm_generate_params, reasoning_end, 128);
CHECK(mobilellm_generate_params, reasoning_closing, 136);
CHECK(mobilellm_generate_params, piece_callback, 144);
CHECK(mobilellm_generate_params, logit_bias_pieces, 152);
CHECK(mobilellm_generate_params, logit_bias_piece_values, 160);
CHECK(mobilellm_generate_params, n_logit_bias_pieces, 168);
CHECK(mobilellm_generate_params, out_logprobs, 176);
CHECK(mobilellm_generate_params, out_logprobs_capacity, 184);

SIZE(mobilellm_generate_result, 24); /* 16 as first released; n_reasoning_tokens, reasoning_budget_index appended */
CHECK(mobilellm_generate_result, n_reasoning_tokens, 16);
CHECK(mobilellm_generate_result, reasoning_budget_index, 20);

/* Appended in ABI v1: output control (fixed layouts, no struct_size). */
SIZE(mobilellm_token_logprob, 172);
CHECK(mobilellm_token_logprob, n_top, 8);
CHECK(mobilellm_token_logprob, top_tokens, 12);
CHECK(mobilellm_token_logprob, top_logprobs, 92);
SIZE(mobilellm_piece, 32);
CHECK(mobilellm_piece, channel, 4);
CHECK(mobilellm_piece, text, 8);
CHECK(mobilellm_piece, text_length, 16);
CHECK(mobilellm_piece, logprob, 24);

/* Appended in ABI v1: memory estimate. */
SIZE(mobilellm_memory_estimate, 64);
CHECK(mobilellm_memory_estimate, n_ctx, 4);
CHECK(mobilellm_memory_estimate, kv_cache_type, 8);
CHECK(mobilellm_memory_estimate, n_threads, 12);
CHECK(mobilellm_memory_estimate, weights_mapped_bytes, 16);
CHECK(mobilellm_memory_estimate, weights_anonymous_bytes, 24);
CHECK(mobilellm_memory_estimate, kv_bytes_per_position, 32);
CHECK(mobilellm_memory_estimate, kv_bytes, 40);
CHECK(mobilellm_memory_estimate, scratch_bytes, 48);
CHECK(mobilellm_memory_estimate, total_bytes, 56);

SIZE(mobilellm_chat_message, 16);
SIZE(mobilellm_chat_params, 32);
CHECK(mobilellm_chat_params, add_generation_prompt, 4);
CHECK(mobilellm_chat_params, variables_json, 8);
CHECK(mobilellm_chat_params, messages_json, 16);
CHECK(mobilellm_chat_params, template_override, 24);

/* Appended in ABI v1: batched generation. */
SIZE(mobilellm_batch_params, 20);
CHECK(mobilellm_batch_params, max_rows_per_step, 4);
CHECK(mobilellm_batch_params, n_ctx, 8);
CHECK(mobilellm_batch_params, kv_cache_type, 12);
CHECK(mobilellm_batch_params, stream_text, 16);
CHECK(mobilellm_batch_params, keep_logits, 17);

SIZE(mobilellm_batch_event, 40); /* a fixed layout (no struct_size): an array element of mobilellm_batch_step */
CHECK(mobilellm_batch_event, sequence, 4);
CHECK(mobilellm_batch_event, token, 8);
CHECK(mobilellm_batch_event, stop_reason, 12);
CHECK(mobilellm_batch_event, n_tokens, 16);
CHECK(mobilellm_batch_event, n_prompt_tokens, 20);
CHECK(mobilellm_batch_event, text, 24);
CHECK(mobilellm_batch_event, text_length, 32);
#endif

/* Keeps this translation unit non-empty on every platform without exporting anything. */
typedef int mobilellm_layout_checked;
