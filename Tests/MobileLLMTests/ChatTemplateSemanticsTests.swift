import Foundation
import Testing
@testable import MobileLLM

@Suite struct ChatTemplateSemanticsTests {
    /// Each jinja2-generated case in semantics.json: same text, or an error when jinja2 raised (on the same line).
    @Test func snippetsMatchJinja2() throws {
        let fixture = try TemplateFixtures.load("semantics.json")
        guard case let .array(cases)? = fixture["cases"] else {
            Issue.record("semantics.json has no cases")
            return
        }
        #expect(cases.count >= 100)
        for testCase in cases {
            guard case let .string(name)? = testCase["name"], case let .string(source)? = testCase["source"],
                  case let .object(members)? = testCase["variables"] else { continue }
            var variables: [String: TemplateValue] = [:]
            for member in members { variables[member.key] = member.value }
            do {
                let template = try ChatTemplate(source: source, name: name)
                let text = try template.render(messages: [TemplateValue](), addGenerationPrompt: false, variables: variables, now: TemplateFixtures.now)
                if case let .string(want)? = testCase["text"] {
                    #expect(text.unicodeScalars.elementsEqual(want.unicodeScalars), "\(name): \(TemplateFixtures.firstDifference(text, want))")
                } else {
                    Issue.record("\(name): rendered \(PythonText.stringRepr(text)) but jinja2 raised \(PythonText.str(Value(testCase["error"] ?? .null)))")
                }
            } catch let MobileLLMError.template(_, line, _, message) {
                if case let .string(want)? = testCase["text"] {
                    Issue.record("\(name): raised '\(message)' but jinja2 rendered \(PythonText.stringRepr(want))")
                } else if case let .int(wantLine)? = testCase["error_line"] {
                    #expect(line == wantLine, "\(name): error on line \(line), jinja2 says line \(wantLine): \(message)")
                }
            }
        }
    }

    private func render(_ source: String, _ variables: [String: TemplateValue] = [:]) throws -> String {
        try ChatTemplate(source: source, name: "t.jinja").render(messages: [TemplateValue](), addGenerationPrompt: false, variables: variables)
    }

    private func error(_ source: String) -> MobileLLMError? {
        do {
            _ = try render(source)
            return nil
        } catch let error as MobileLLMError {
            return error
        } catch {
            return nil
        }
    }

    @Test func errorsNameFileLineAndColumn() {
        let unknown = error("a\n  {{ x | wordwrap }}")
        #expect(unknown == nil || unknown.map { "\($0)".contains("t.jinja: line 2 column") } == true)
        guard case let .template(path, line, column, message)? = error("line one\n{{ 1 +\n}}") else {
            Issue.record("expected a template error")
            return
        }
        #expect(path == "t.jinja" && line == 3 && column == 1)
        #expect(message.contains("expected an expression"))
        guard case let .template(_, line2, column2, message2)? = error("ok\n  {{ x|nosuch }}") else {
            Issue.record("expected a template error")
            return
        }
        #expect(line2 == 2 && column2 == 8 && message2.contains("no filter named 'nosuch'"))
    }

    @Test func unsupportedConstructsAreNamed() {
        for (source, construct) in [("{{ 'a b'|wordwrap(3) }}", "unsupported filter 'wordwrap'"),
                                    ("{% include 'x.jinja' %}", "unsupported tag 'include'"),
                                    ("{{ '%s' % 1 }}", "unsupported: printf-style"),
                                    ("{% for x in y recursive %}{% endfor %}", "recursive")] {
            let failure = error(source)
            #expect(failure.map { "\($0)".contains(construct) } == true, "\(source): \(String(describing: failure))")
        }
        if case let .template(_, line, column, _)? = error("\n\n  {{ 'a b'|wordwrap(3) }}") {
            #expect(line == 3 && column == 12)
        } else {
            Issue.record("wordwrap should fail")
        }
    }

    @Test func hostileTemplatesFailCleanly() {
        let deep = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(error("{{ \(deep) }}") != nil)
        let nested = String(repeating: "{% if true %}", count: 3000) + String(repeating: "{% endif %}", count: 3000)
        #expect(error(nested) != nil)
        #expect(error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}") != nil)
        #expect(error("{% for i in range(100000000) %}{% endfor %}") != nil)
        // The iteration limit (lowered here to keep the test fast in debug builds).
        do {
            var template = try ChatTemplate(source: "{% for a in range(2000) %}{% for b in range(2000) %}{% endfor %}{% endfor %}", name: "loops")
            template.limits.maximumIterations = 50_000
            _ = try template.render(messages: [TemplateValue](), addGenerationPrompt: false)
            Issue.record("the iteration limit did not stop the loops")
        } catch {
            #expect("\(error)".contains("too many loop iterations"))
        }
        #expect(error("{% set s = 'x' * 1000 %}{% for i in range(1000000) %}{{ s }}{% endfor %}") != nil)
        #expect(error("{{ 'x' * 100000000000 }}") != nil)
        #expect(error("{{ 9223372036854775807 + 1 }}") != nil)
        #expect(error("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}") != nil)
        #expect(error("{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = {'a': ns.d} %}{% endfor %}") != nil)
        #expect(error("{% set h = namespace(n=none) %}{% for i in range(100000) %}{% set h.n = namespace(p=h.n) %}{% endfor %}") != nil)
        #expect((try? render("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}")) == "<Namespace {'me': [<Namespace {...}>]}>")
        #expect(throws: MobileLLMError.self) {
            try TemplateValue.parse(Data((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8), path: "deep.json")
        }
        #expect(error("{{ '") != nil)
        #expect(error("{# never closed") != nil)
        #expect(error("{% if true %}") != nil)
        #expect(error("{{ [1, 2}") != nil)
    }

    @Test func intAndFloatStayApart() throws {
        let values = try TemplateValue.parse(Data(#"{"n": 3, "f": 3.0, "big": 1e300, "neg": -0.0}"#.utf8), path: "v.json")
        guard case let .object(members) = values else { Issue.record("not an object"); return }
        var variables: [String: TemplateValue] = [:]
        for member in members { variables[member.key] = member.value }
        #expect(try render("{{ n }} {{ f }} {{ big }} {{ neg }} {{ n / 2 }}", variables) == "3 3.0 1e+300 -0.0 1.5")
        #expect(TemplateValue(JSONValue.number(3)) == .int(3))
        #expect(TemplateValue(JSONValue.number(2.5)) == .float(2.5))
    }

    @Test func jsonValueMessagesRender() throws {
        let template = try ChatTemplate(source: "{% for m in messages %}{{ m.role }}:{{ m['content'] }};{% endfor %}{{ n }}", name: "j")
        let text = try template.render(messages: [["role": .string("user"), "content": .string("hi")]], addGenerationPrompt: false, variables: ["n": .number(2)])
        #expect(text == "user:hi;2")
    }

    @Test func reasoningFieldsAreAliasedLikeTransformers() throws {
        let message = TemplateValue.object([(key: "role", value: .string("assistant")), (key: "content", value: .string("x")),
                                            (key: "reasoning", value: .string("r"))])
        let template = try ChatTemplate(source: "{{ messages[0]|tojson }}", name: "r")
        #expect(try template.render(messages: [message], addGenerationPrompt: false)
            == #"{"thinking": "r", "role": "assistant", "content": "x", "reasoning": "r", "reasoning_content": "r"}"#)
    }

    @Test func defaultTemplateIsLlama3HeaderFormat() throws {
        let text = try ChatTemplate.llama3Header.render(messages: [ChatMessage(role: "system", content: " Be brief. "), ChatMessage(role: "user", content: "Hi")],
                                                        addGenerationPrompt: true, variables: ["bos_token": .string("<|begin_of_text|>")])
        #expect(text == "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    @Test func modelDirectoryLoader() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-template-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("tokenizer_config.json")

        // No template: built-in Llama-3 header format, AddedToken-style bos.
        try Data(#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}"#.utf8).write(to: config)
        var loaded = try ModelChatTemplate.load(modelDirectory: directory.path)
        #expect(loaded.isBuiltInDefault && loaded.bosToken == "<s>" && loaded.eosToken == "</s>")
        #expect(try loaded.render(messages: [ChatMessage(role: "user", content: "a")], addGenerationPrompt: false)
            == "<s><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>")

        // A list of named templates: "default" wins.
        try Data(#"{"eos_token": "</s>", "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ eos_token }}"}]}"#.utf8).write(to: config)
        loaded = try ModelChatTemplate.load(modelDirectory: directory.path)
        #expect(try loaded.render(messages: [TemplateValue](), addGenerationPrompt: false) == "D</s>")

        // A string template.
        try Data(#"{"chat_template": "S{{ messages|length }}"}"#.utf8).write(to: config)
        loaded = try ModelChatTemplate.load(modelDirectory: directory.path)
        #expect(try loaded.render(messages: [ChatMessage(role: "user", content: "a")], addGenerationPrompt: false) == "S1")

        // chat_template.jinja takes precedence.
        try Data("J{{ bos_token is defined }}\n".utf8).write(to: directory.appendingPathComponent("chat_template.jinja"))
        loaded = try ModelChatTemplate.load(modelDirectory: directory.path)
        #expect(try loaded.render(messages: [TemplateValue](), addGenerationPrompt: false) == "JFalse")

        // Malformed values are reported with the field.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("chat_template.jinja"))
        try Data(#"{"chat_template": 5}"#.utf8).write(to: config)
        #expect(throws: MobileLLMError.self) { try ModelChatTemplate.load(modelDirectory: directory.path) }
        try Data(#"{"chat_template": "{% if %}"}"#.utf8).write(to: config)
        #expect(throws: MobileLLMError.self) { try ModelChatTemplate.load(modelDirectory: directory.path) }
    }

    @Test func ggufStyleSourceWithTokens() throws {
        let model = try ModelChatTemplate(source: "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", name: "gguf tokenizer.chat_template",
                                          bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        #expect(try model.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false) == "<|im_start|>x<|im_end|>")
        let fallback = try ModelChatTemplate(source: nil, name: "none", bosToken: "B", eosToken: nil)
        #expect(fallback.isBuiltInDefault)
    }
}
