#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One chat message: a role ("system", "user", "assistant", "tool", …) and its text.
public struct ChatMessage: Sendable, Equatable {
    /// Who speaks.
    public var role: String
    /// What is said.
    public var content: String
    /// An assistant message's reasoning, kept apart from `content` (templates see it as `reasoning_content`, and
    /// `thinking`/`reasoning` too; templates that do not use it leave it out of the prompt). nil: none.
    public var reasoningContent: String?

    /// Makes a message.
    public init(role: String, content: String, reasoningContent: String? = nil) {
        self.role = role
        self.content = content
        self.reasoningContent = reasoningContent
    }

    /// The message as a template sees it: `{"role": ..., "content": ...}`, plus `"reasoning_content": ...` when
    /// `reasoningContent` is set.
    public var templateValue: TemplateValue {
        guard let reasoningContent else { return .message(role: role, content: content) }
        return .object([(key: "role", value: .string(role)), (key: "content", value: .string(content)),
                        (key: "reasoning_content", value: .string(reasoningContent))])
    }
}

/// A compiled Hugging Face chat template: the Jinja subset real templates use, rendered byte-identically to
/// Python jinja2 configured as transformers configures it (`ImmutableSandboxedEnvironment`, `trim_blocks`,
/// `lstrip_blocks`, loop controls, transformers' `tojson`, `raise_exception`, `strftime_now`).
///
/// Compile once with `init(source:name:)`, render many times; the value is immutable and `Sendable`.
/// Every error is a `MobileLLMError.template` naming the template, line and column.
public struct ChatTemplate: Sendable {
    /// A name for errors: a file path, or a description such as "tokenizer_config.json chat_template".
    public let name: String
    /// The Jinja source.
    public let source: String
    private let nodes: [Node]

    /// Limits on output size, loop iterations, call depth and `range()` length for one render.
    var limits = RenderLimits()

    /// The template mobilellm uses for a model without one: the Llama-3 header format (as MobileLLM-R1 uses):
    /// `bos_token` then `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` per message (content
    /// trimmed), and `<|start_header_id|>assistant<|end_header_id|>\n\n` for the generation prompt.
    public static let llama3HeaderSource =
        "{% for message in messages %}"
        + "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
        + "{% if loop.index0 == 0 %}{% set content = (bos_token | default('')) + content %}{% endif %}"
        + "{{ content }}"
        + "{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"

    /// The compiled `llama3HeaderSource`.
    public static var llama3Header: ChatTemplate {
        // The constant is known to compile (tested); fall back to a text-only template rather than trap.
        (try? ChatTemplate(source: llama3HeaderSource, name: "built-in Llama-3 header template"))
            ?? ChatTemplate(name: "built-in Llama-3 header template", source: llama3HeaderSource, nodes: [])
    }

    private init(name: String, source: String, nodes: [Node]) {
        self.name = name
        self.source = source
        self.nodes = nodes
    }

    /// Compiles `source`. Throws `MobileLLMError.template` for a syntax error, an unknown filter or test (as
    /// jinja2 does at compile time), or a construct outside the supported subset (e.g. `{% include %}`).
    public init(source: String, name: String) throws {
        self.name = name
        self.source = source
        do {
            let lexer = try Lexer(source)
            var parser = Parser(tokens: lexer.tokens)
            nodes = try parser.parseTemplate()
        } catch let error as TemplateError {
            throw MobileLLMError.template(path: name, line: error.position.line, column: error.position.column, message: error.message)
        }
    }

    /// Renders `messages` with `add_generation_prompt` and extra `variables` (e.g. `bos_token`, `eos_token`,
    /// `date_string`, `tools`, `enable_thinking`). `now` is the time `strftime_now` reports.
    ///
    /// Like transformers, the template also sees `tools` and `documents` as `None` unless `variables` sets them,
    /// and a message carrying `reasoning_content`, `thinking` or `reasoning` gets the others filled in.
    public func render(messages: [TemplateValue], addGenerationPrompt: Bool, variables: [String: TemplateValue] = [:], now: Date = Date()) throws -> String {
        let globals = Scope(parent: nil)
        globals.variables = Builtins.globals()
        let context = Scope(parent: globals)
        context.variables["messages"] = .list(messages.map { Value(Self.aliasReasoning($0)) })
        context.variables["tools"] = Value.none
        context.variables["documents"] = Value.none
        context.variables["add_generation_prompt"] = .bool(addGenerationPrompt)
        for (key, value) in variables { context.variables[key] = Value(value) }
        let interpreter = Interpreter(limits: limits, now: now)
        do {
            return try interpreter.render(nodes, scope: context)
        } catch let error as TemplateError {
            throw MobileLLMError.template(path: name, line: error.position.line, column: error.position.column, message: error.message)
        }
    }

    /// Renders plain role/content messages (see `render(messages:addGenerationPrompt:variables:now:)`).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, variables: [String: TemplateValue] = [:], now: Date = Date()) throws -> String {
        try render(messages: messages.map(\.templateValue), addGenerationPrompt: addGenerationPrompt, variables: variables, now: now)
    }

    /// Renders messages given as `JSONValue` objects. `JSONValue` keeps numbers as `Double` and objects unordered,
    /// so whole numbers become ints and members are sorted (see `TemplateValue.init(_:)`); use the
    /// `TemplateValue` overload to keep them exactly.
    public func render(messages: [[String: JSONValue]], addGenerationPrompt: Bool, variables: [String: JSONValue] = [:], now: Date = Date()) throws -> String {
        try render(messages: messages.map { TemplateValue(.object($0)) }, addGenerationPrompt: addGenerationPrompt,
                   variables: variables.mapValues(TemplateValue.init), now: now)
    }

    /// transformers' `_alias_reasoning_fields`: `{"thinking": r, **message, "reasoning_content": r}`.
    static func aliasReasoning(_ message: TemplateValue) -> TemplateValue {
        guard case let .object(members) = message else { return message }
        var reasoning: TemplateValue? = nil
        for field in ["reasoning_content", "thinking", "reasoning"] {
            if let value = message[field], value != .null { reasoning = value; break }
        }
        guard let reasoning else { return message }
        var result: [(key: String, value: TemplateValue)] = [(key: "thinking", value: reasoning)]
        for member in members {
            if member.key == "thinking" { result[0].value = member.value; continue }
            result.append(member)
        }
        if let index = result.firstIndex(where: { $0.key == "reasoning_content" }) {
            result[index].value = reasoning
        } else {
            result.append((key: "reasoning_content", value: reasoning))
        }
        return .object(result)
    }
}

/// A model's chat template with the special-token strings it is rendered with.
public struct ModelChatTemplate: Sendable {
    /// The compiled template.
    public let template: ChatTemplate
    /// `bos_token` as the template sees it (nil when the model names none).
    public let bosToken: String?
    /// `eos_token` as the template sees it (nil when the model names none).
    public let eosToken: String?
    /// Other special-token strings from the tokenizer config (`unk_token`, `pad_token`, …), by variable name.
    public let otherSpecialTokens: [String: String]
    /// True when the model has no template and the built-in Llama-3 header format is used.
    public let isBuiltInDefault: Bool

    /// Wraps a template string from any source (e.g. GGUF `tokenizer.chat_template`); a nil or empty
    /// `source` selects the built-in Llama-3 header template. Throws `MobileLLMError.template` when the
    /// source does not compile.
    public init(source: String?, name: String, bosToken: String?, eosToken: String?, otherSpecialTokens: [String: String] = [:]) throws {
        if let source, !source.isEmpty {
            template = try ChatTemplate(source: source, name: name)
            isBuiltInDefault = false
        } else {
            template = ChatTemplate.llama3Header
            isBuiltInDefault = true
        }
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.otherSpecialTokens = otherSpecialTokens
    }

    /// Finds a model directory's template: `chat_template.jinja`, else `chat_template` in
    /// `tokenizer_config.json` (a string, or a list of `{name, template}` from which "default" is taken), else
    /// the built-in Llama-3 header format. Special-token strings come from `tokenizer_config.json` (a string
    /// or an AddedToken object `{"content": ...}`). Throws when a file exists but is malformed.
    public static func load(modelDirectory path: String) throws -> ModelChatTemplate {
        let kind = pathKind(path)
        guard kind != .missing else {
            throw MobileLLMError.fileNotFound(path: path, reason: "no such file or directory")
        }
        guard kind == .directory else {
            throw MobileLLMError.invalidFile(path: path, field: "(path)", problem: "expected a model directory")
        }
        return try load(modelDirectory: path, tokenizerConfig: try tokenizerConfig(ofDirectory: path))
    }

    /// A model directory's tokenizer_config.json as an object (nil when the directory has none). Throws when it is
    /// malformed or not an object.
    static func tokenizerConfig(ofDirectory path: String) throws -> TemplateValue? {
        let configPath = ModelDirectory.join(path, "tokenizer_config.json")
        guard fileExists(configPath) else { return nil }
        let config = try TemplateValue.load(path: configPath)
        guard case .object = config else {
            throw MobileLLMError.invalidFile(path: configPath, field: "(document)", problem: "expected a JSON object")
        }
        return config
    }

    /// `load(modelDirectory:)` with tokenizer_config.json already parsed (`tokenizerConfig(ofDirectory:)`).
    static func load(modelDirectory path: String, tokenizerConfig parsed: TemplateValue?) throws -> ModelChatTemplate {
        let configPath = ModelDirectory.join(path, "tokenizer_config.json")
        let config = parsed ?? .object([])
        var tokens: [String: String] = [:]
        for field in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
            switch config[field] {
            case nil, .null?: continue
            case let .string(text)?: tokens[field] = text
            case let .object(members)?:
                guard case let .string(text)? = members.last(where: { $0.key == "content" })?.value else {
                    throw MobileLLMError.invalidFile(path: configPath, field: field + ".content", problem: "expected the token string")
                }
                tokens[field] = text
            case let other?:
                throw MobileLLMError.invalidFile(path: configPath, field: field, problem: "expected a string or an AddedToken object, found \(Self.describe(other))")
            }
        }
        let bos = tokens.removeValue(forKey: "bos_token")
        let eos = tokens.removeValue(forKey: "eos_token")

        let jinjaPath = ModelDirectory.join(path, "chat_template.jinja")
        if fileExists(jinjaPath) {
            let data = try readWholeFile(jinjaPath)
            guard let text = String(validating: data, as: UTF8.self) else {
                throw MobileLLMError.invalidFile(path: jinjaPath, field: "(document)", problem: "not valid UTF-8")
            }
            return try ModelChatTemplate(source: text, name: jinjaPath, bosToken: bos, eosToken: eos, otherSpecialTokens: tokens)
        }
        switch config["chat_template"] {
        case nil, .null?:
            return try ModelChatTemplate(source: nil, name: "built-in", bosToken: bos, eosToken: eos, otherSpecialTokens: tokens)
        case let .string(text)?:
            return try ModelChatTemplate(source: text, name: configPath + " chat_template", bosToken: bos, eosToken: eos, otherSpecialTokens: tokens)
        case let .array(items)?:
            var found: String? = nil
            for (index, item) in items.enumerated() {
                guard case let .string(name)? = item["name"], case let .string(text)? = item["template"] else {
                    throw MobileLLMError.invalidFile(path: configPath, field: "chat_template[\(index)]", problem: "expected an object with string 'name' and 'template'")
                }
                if name == "default" { found = text }
            }
            guard let found else {
                throw MobileLLMError.invalidFile(path: configPath, field: "chat_template", problem: "a list of named templates without one named \"default\"")
            }
            return try ModelChatTemplate(source: found, name: configPath + " chat_template[default]", bosToken: bos, eosToken: eos, otherSpecialTokens: tokens)
        case let other?:
            throw MobileLLMError.invalidFile(path: configPath, field: "chat_template", problem: "expected a string or a list of {name, template}, found \(describe(other))")
        }
    }

    private static func describe(_ value: TemplateValue) -> String {
        value.kindDescription
    }

    /// The variables the template is rendered with: the special tokens, then `variables` (which win).
    public func variables(adding variables: [String: TemplateValue] = [:]) -> [String: TemplateValue] {
        var result: [String: TemplateValue] = [:]
        for (key, value) in otherSpecialTokens { result[key] = .string(value) }
        if let bosToken { result["bos_token"] = .string(bosToken) }
        if let eosToken { result["eos_token"] = .string(eosToken) }
        for (key, value) in variables { result[key] = value }
        return result
    }

    /// Renders `messages` with the model's special tokens (see `ChatTemplate.render`).
    public func render(messages: [TemplateValue], addGenerationPrompt: Bool, variables: [String: TemplateValue] = [:], now: Date = Date()) throws -> String {
        try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, variables: self.variables(adding: variables), now: now)
    }

    /// Renders plain role/content messages with the model's special tokens.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, variables: [String: TemplateValue] = [:], now: Date = Date()) throws -> String {
        try render(messages: messages.map(\.templateValue), addGenerationPrompt: addGenerationPrompt, variables: variables, now: now)
    }
}
