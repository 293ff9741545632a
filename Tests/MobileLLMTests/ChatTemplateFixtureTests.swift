import Foundation
import Testing
@testable import MobileLLM

/// Fixtures made by scripts/make_template_fixtures.py with jinja2 configured as transformers configures it.
enum TemplateFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/templates")

    static func load(_ name: String) throws -> TemplateValue {
        try TemplateValue.load(path: directory.appendingPathComponent(name).path)
    }

    static func source(_ name: String) throws -> String {
        let data = try Data(contentsOf: directory.appendingPathComponent("sources").appendingPathComponent(name))
        return String(decoding: data, as: UTF8.self)
    }

    /// The fixed `strftime_now` time of the fixtures (2024-07-26 09:05:03 local time).
    static let now: Date = {
        var components = DateComponents()
        (components.year, components.month, components.day) = (2024, 7, 26)
        (components.hour, components.minute, components.second) = (9, 5, 3)
        return Calendar(identifier: .gregorian).date(from: components) ?? Date(timeIntervalSince1970: 0)
    }()

    /// Where two strings first differ, for readable failures.
    static func firstDifference(_ a: String, _ b: String) -> String {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        var index = 0
        while index < min(x.count, y.count), x[index] == y[index] { index += 1 }
        let context = { (s: [Unicode.Scalar]) in
            PythonText.stringRepr(PyString.make(s[max(0, index - 30)..<min(s.count, index + 30)]))
        }
        return "at scalar \(index): got \(context(x)) expected \(context(y))"
    }
}

/// Outcome of rendering one fixture template with every message list.
struct TemplateOutcome {
    var name: String
    var identical = 0
    var total = 0
    /// Renders where jinja2 and we both raised (counted in `identical`).
    var bothRaised = 0
    var mismatches: [String] = []
    var unsupported: [String] = []
}

func renderFixtureTemplates() throws -> [TemplateOutcome] {
    let expected = try TemplateFixtures.load("expected.json")
    guard case let .array(messageSets)? = expected["message_sets"], case let .object(templates)? = expected["templates"],
          case let .object(variableMembers)? = expected["variables"] else {
        throw MobileLLMError.invalidFile(path: "expected.json", field: "(document)", problem: "unexpected layout")
    }
    var variables: [String: TemplateValue] = [:]
    for member in variableMembers { variables[member.key] = member.value }
    var outcomes: [TemplateOutcome] = []
    for (name, entry) in templates {
        var outcome = TemplateOutcome(name: name)
        let source = try TemplateFixtures.source(name)
        let compiled: ChatTemplate
        do {
            compiled = try ChatTemplate(source: source, name: name)
        } catch {
            if case .string? = entry["compile_error"] {
                outcome.identical = 1
                outcome.total = 1
            } else {
                outcome.total = 1
                let message = "\(error)"
                if message.contains("unsupported") { outcome.unsupported.append(message) } else { outcome.mismatches.append("compile: \(message)") }
            }
            outcomes.append(outcome)
            continue
        }
        if case .string? = entry["compile_error"] {
            outcome.total = 1
            outcome.mismatches.append("compiles, but jinja2 failed to compile it")
            outcomes.append(outcome)
            continue
        }
        guard case let .array(renders)? = entry["renders"] else { continue }
        for render in renders {
            guard case let .int(setIndex)? = render["messages"], case let .bool(agp)? = render["add_generation_prompt"],
                  case let .array(messages) = messageSets[setIndex] else { continue }
            outcome.total += 1
            let label = "messages[\(setIndex)] add_generation_prompt=\(agp)"
            var renderVariables = variables
            if case let .array(extras)? = expected["message_set_variables"], setIndex < extras.count, case let .object(extra) = extras[setIndex] {
                for member in extra { renderVariables[member.key] = member.value }
            }
            do {
                let text = try compiled.render(messages: messages, addGenerationPrompt: agp, variables: renderVariables, now: TemplateFixtures.now)
                if case let .string(want)? = render["text"] {
                    if text == want && text.unicodeScalars.elementsEqual(want.unicodeScalars) {
                        outcome.identical += 1
                    } else {
                        outcome.mismatches.append("\(label): \(TemplateFixtures.firstDifference(text, want))")
                    }
                } else {
                    outcome.mismatches.append("\(label): rendered, but jinja2 raised \(PythonText.str(Value(render["error"] ?? .null)))")
                }
            } catch {
                if case .string? = render["error"] {
                    outcome.identical += 1  // both raise
                    outcome.bothRaised += 1
                    if "\(error)".contains("unsupported") { outcome.unsupported.append("\(label) (jinja2 raised too): \(error)") }
                } else if "\(error)".contains("unsupported") {
                    outcome.unsupported.append("\(label): \(error)")
                } else {
                    outcome.mismatches.append("\(label): \(error)")
                }
            }
        }
        outcomes.append(outcome)
    }
    return outcomes.sorted { $0.name < $1.name }
}

@Suite struct ChatTemplateFixtureTests {
    /// Templates that must render byte-identically for every message list.
    static let required = [
        "meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "meta-llama-Llama-3.3-70B-Instruct.jinja", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "Qwen-Qwen3-0.6B.jinja", "HuggingFaceTB-SmolLM3-3B.jinja",
        "HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "microsoft-Phi-3.5-mini-instruct.jinja",
        "mobilellm-llama3-header.jinja",
    ]

    @Test func everyFixtureTemplateRendersLikeJinja2OrFailsClearly() throws {
        let outcomes = try renderFixtureTemplates()
        #expect(outcomes.count >= 70)
        var fullyIdentical = 0
        for outcome in outcomes {
            if outcome.identical == outcome.total { fullyIdentical += 1 }
            for mismatch in outcome.mismatches {
                Issue.record("\(outcome.name): \(mismatch)")
            }
            if Self.required.contains(outcome.name) {
                #expect(outcome.identical == outcome.total, "\(outcome.name) must render identically: \(outcome.unsupported)")
            }
        }
        let renders = outcomes.reduce(0) { $0 + $1.total }
        let identical = outcomes.reduce(0) { $0 + $1.identical }
        let bothRaised = outcomes.reduce(0) { $0 + $1.bothRaised }
        print("chat templates: \(fullyIdentical)/\(outcomes.count) templates identical for every message list; \(identical)/\(renders) renders identical (\(identical - bothRaised) texts byte-identical, \(bothRaised) raise in both)")
        for outcome in outcomes where outcome.identical != outcome.total || !outcome.unsupported.isEmpty {
            print("  \(outcome.name): \(outcome.identical)/\(outcome.total); \((outcome.unsupported + outcome.mismatches).first ?? "")")
        }
    }

    @Test func builtInTemplateMatchesTheFixtureSource() throws {
        #expect(ChatTemplate.llama3HeaderSource == (try TemplateFixtures.source("mobilellm-llama3-header.jinja")))
    }
}
