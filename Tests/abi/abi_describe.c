/* Prints the ABI facts the guard compares with abi/abi-v<N>.txt: the header's and the library's ABI versions and
 * sizeof every struct that carries struct_size. */
#include <stdio.h>

#include "mobilellm.h"

int main(void) {
    printf("abi_version %d\n", MOBILELLM_ABI_VERSION);
    printf("library_abi_version %u\n", mobilellm_abi_version());
    printf("struct mobilellm_model_params %zu\n", sizeof(mobilellm_model_params));
    printf("struct mobilellm_model_info %zu\n", sizeof(mobilellm_model_info));
    printf("struct mobilellm_session_params %zu\n", sizeof(mobilellm_session_params));
    printf("struct mobilellm_sampler_params %zu\n", sizeof(mobilellm_sampler_params));
    printf("struct mobilellm_generate_params %zu\n", sizeof(mobilellm_generate_params));
    printf("struct mobilellm_generate_result %zu\n", sizeof(mobilellm_generate_result));
    printf("struct mobilellm_chat_message %zu\n", sizeof(mobilellm_chat_message));
    printf("struct mobilellm_chat_params %zu\n", sizeof(mobilellm_chat_params));
    /* Appended in ABI v1 (after every first-release struct, in the order abi-v1.txt's appended lines give them). */
    printf("struct mobilellm_batch_params %zu\n", sizeof(mobilellm_batch_params));
    printf("struct mobilellm_batch_event %zu\n", sizeof(mobilellm_batch_event));
    printf("struct mobilellm_token_logprob %zu\n", sizeof(mobilellm_token_logprob));
    printf("struct mobilellm_piece %zu\n", sizeof(mobilellm_piece));
    printf("struct mobilellm_memory_estimate %zu\n", sizeof(mobilellm_memory_estimate));
    return 0;
}
