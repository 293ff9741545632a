// Greedy and sampled generation through the C++ wrapper.  Usage: generate_cpp MODEL_DIR
#include <iostream>

#include "mobilellm.hpp"

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL_DIR\n";
        return 2;
    }
    try {
        mobilellm::Model model(argv[1]);
        std::cout << model.metadata("architecture") << ", vocabulary " << model.vocab_size() << "\n";
        auto session = model.session(256);
        mobilellm::GenerateOptions options;
        options.max_tokens = 16;
        options.on_token = [](int32_t token, std::string_view) {
            std::cout << token << ' ';
            return true;
        };
        auto greedy = session.generate({0, 169, 380, 264, 92}, options);
        std::cout << "\nstop reason " << greedy.stop_reason << ", " << greedy.tokens.size() << " tokens\n";
        session.eval({1, 2, 3, 100000}); // throws: id outside the vocabulary
    } catch (const mobilellm::Error &error) {
        std::cout << "caught " << mobilellm_status_name(error.status()) << ": " << error.what() << "\n";
        return error.status() == MOBILELLM_ERROR_INVALID_ARGUMENT ? 0 : 1;
    }
    return 1;
}
