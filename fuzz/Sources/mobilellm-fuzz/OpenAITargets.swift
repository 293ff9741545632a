import Foundation
import MobileLLM
import MobileLLMOpenAI

/// `openai-request`: bytes as the body of a `/v1/chat/completions` (when they contain `"messages"`) or `/v1/completions` request to
/// `mobilellm serve`, validated against the R1-shaped fixture model (its 384-id tokenizer and chat template).
/// Invariants: the parser never traps; every refusal is an `APIError` with a 4xx status, a message and an error
/// JSON that parses back; an accepted request has prompts that fit the context, 1...128 samples, valid sampling
/// settings, at most 16 stop strings and logprobs within 0...20.
let openAIRequestTarget = FuzzTarget(
    name: "openai-request",
    about: "OpenAI chat/completions request bodies: CompletionRequest validation against the fixture model",
    setUp: { _ = openAIFixtureModel },
    run: { bytes in
        let endpoint: CompletionEndpoint = text(of: bytes).contains("\"messages\"") ? .chat : .completions
        let capacity = 256
        do {
            let request = try CompletionRequest(endpoint: endpoint, body: Array(bytes), model: openAIFixtureModel,
                                                servedID: "fixture", capacity: capacity)
            if request.prompts.isEmpty { violated("accepted with no prompt") }
            for prompt in request.prompts where prompt.isEmpty || prompt.count >= capacity {
                violated("accepted a prompt of \(prompt.count) tokens for capacity \(capacity)")
            }
            if !(1...CompletionRequest.maxSamples).contains(request.samples) { violated("accepted n = \(request.samples)") }
            if request.options.stopStrings.count > CompletionRequest.maxStopStrings || request.options.stopStrings.contains("") {
                violated("accepted stop strings \(request.options.stopStrings)")
            }
            if !(0...20).contains(request.topLogprobs) { violated("accepted top logprobs \(request.topLogprobs)") }
            do { try request.options.sampling.validate() } catch { violated("accepted invalid sampling: \(error)") }
        } catch let error as APIError {
            if !(400..<500).contains(error.status) || error.message.isEmpty {
                violated("refused with status \(error.status): \(error.message)")
            }
            guard case .object? = try? JSONValue.parse(Array(error.json.jsonText.utf8), path: "error") else {
                violated("the error JSON does not parse: \(error.json.jsonText)")
            }
        } catch {
            violated("CompletionRequest threw \(error), not APIError")
        }
    }
)

/// The model requests are validated against: Tests/Fixtures/r1like-chat (R1-shaped weights, tokenizer, template).
let openAIFixtureModel: Model = {
    let path = repositoryPath("Tests/Fixtures/r1like-chat")
    do { return try Model(path: path) } catch { violated("cannot load the model \(path): \(error)") }
}()
