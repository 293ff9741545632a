import ArgumentParser
import Foundation
import MobileLLM

/// `mobilellm template`: renders a model's chat template, or a standalone template file, for a message list.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render a chat template for a list of messages.",
        discussion: """
        Output: {"text": "..."}. With --model, the model directory's template (chat_template.jinja or \
        tokenizer_config.json chat_template; the Llama-3 header format when it has none) is rendered with its \
        bos_token/eos_token. With --template, the file is rendered with variables from --vars only. \
        --messages is a JSON list of {"role", "content"} objects.
        """
    )

    @Option(name: .long, help: "A model directory (reads tokenizer_config.json / chat_template.jinja) or a .gguf file (tokenizer.chat_template).")
    var model: String?

    @Option(name: .long, help: "A standalone Jinja chat template file.")
    var template: String?

    @Option(name: .long, help: "A JSON file holding a list of {\"role\", \"content\"} messages.")
    var messages: String

    @Flag(name: .long, help: "Append the assistant header so the model starts a reply.")
    var addGenerationPrompt = false

    @Option(name: .long, help: "A JSON file holding an object of extra template variables (bos_token, eos_token, date_string, tools, ...).")
    var vars: String?

    func validate() throws {
        guard (model == nil) != (template == nil) else { throw ValidationError("give exactly one of --model or --template") }
    }

    func run() throws {
        let messageList = try Self.loadMessages(messages)
        var variables: [String: TemplateValue] = [:]
        if let vars {
            guard case let .object(members) = try TemplateValue.load(path: vars) else {
                throw MobileLLMError.invalidFile(path: vars, field: "(document)", problem: "expected a JSON object of template variables")
            }
            for member in members { variables[member.key] = member.value }
        }
        let text: String
        if let model {
            text = try ModelChatTemplate.load(modelPath: model)
                .render(messages: messageList, addGenerationPrompt: addGenerationPrompt, variables: variables)
        } else if let template {
            let data = try readWholeFile(template)
            guard let source = String(validating: data, as: UTF8.self) else {
                throw MobileLLMError.invalidFile(path: template, field: "(document)", problem: "not valid UTF-8")
            }
            text = try ChatTemplate(source: source, name: template)
                .render(messages: messageList, addGenerationPrompt: addGenerationPrompt, variables: variables)
        } else {
            throw ValidationError("give exactly one of --model or --template")
        }
        emit((["text": .string(text)] as TemplateValue).jsonText)
    }

    /// Reads a JSON list of message objects, each with a string "role".
    static func loadMessages(_ path: String) throws -> [TemplateValue] {
        guard case let .array(items) = try TemplateValue.load(path: path) else {
            throw MobileLLMError.invalidFile(path: path, field: "(document)", problem: "expected a JSON list of {\"role\", \"content\"} objects")
        }
        for (index, item) in items.enumerated() {
            guard case .object = item else {
                throw MobileLLMError.invalidFile(path: path, field: "[\(index)]", problem: "expected a {\"role\", \"content\"} object")
            }
            guard case .string? = item["role"] else {
                throw MobileLLMError.invalidFile(path: path, field: "[\(index)].role", problem: "expected a string role")
            }
        }
        return items
    }
}
