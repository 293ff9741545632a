import Foundation
import Testing
@testable import MobileLLM

@Suite("Built-in chat template")
struct ChatTemplateDefaultTests {
    @Test("renders without a bos_token (a model directory with no tokenizer_config.json)")
    func withoutBOS() throws {
        let text = try ChatTemplate.llama3Header.render(messages: [ChatMessage(role: "user", content: " Hi ")], addGenerationPrompt: true)
        #expect(text == "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        let withBOS = try ChatTemplate.llama3Header.render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: false,
                                                           variables: ["bos_token": .string("<|begin_of_text|>")])
        #expect(withBOS == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")
    }
}
