/* Compiled with -std=c99 -Wall -Wextra -Werror -pedantic: mobilellm.h must be clean C99. */
#include "mobilellm.h"

/* Uses each type once so the compiler sees them all. */
typedef struct {
    mobilellm_model_params model;
    mobilellm_model_info info;
    mobilellm_session_params session;
    mobilellm_sampler_params sampler;
    mobilellm_generate_params generate;
    mobilellm_generate_result result;
    mobilellm_log_callback log;
    mobilellm_progress_callback progress;
    mobilellm_token_callback token;
} mobilellm_header_c99_check;
