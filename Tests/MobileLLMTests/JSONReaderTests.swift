import Foundation
import Testing
@testable import MobileLLM

/// The engine's one JSON reader against Python's `json.loads` (Tests/Fixtures/json/python-json.json, written by
/// scripts/make_json_fixtures.py): the same values (ints apart from floats, members in order, last duplicate wins),
/// the same documents refused, and errors at the same line and column.
@Suite("JSON reader")
struct JSONReaderTests {
    struct Case: Decodable, Sendable {
        let hex: String
        let value: TaggedValue?
        let error: String?
        let byte: Int?
        let line: Int?
        let column: Int?

        var bytes: Data {
            var out = Data()
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                out.append(UInt8(hex[index..<next], radix: 16) ?? 0)
                index = next
            }
            return out
        }
    }

    /// Python's value in tagged form: ["i", "3"], ["f", "3.0"], ["s", text], ["b", flag], ["n"], ["a", [...]],
    /// ["o", [[key, value], ...]].
    indirect enum TaggedValue: Decodable, Equatable, Sendable {
        case int(String), float(String), string(String), bool(Bool), null
        case array([TaggedValue]), object([Member])

        struct Member: Decodable, Equatable, Sendable {
            let key: String
            let value: TaggedValue
            init(from decoder: Decoder) throws {
                var c = try decoder.unkeyedContainer()
                key = try c.decode(String.self)
                value = try c.decode(TaggedValue.self)
            }
        }

        init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            switch try c.decode(String.self) {
            case "i": self = .int(try c.decode(String.self))
            case "f": self = .float(try c.decode(String.self))
            case "s": self = .string(try c.decode(String.self))
            case "b": self = .bool(try c.decode(Bool.self))
            case "n": self = .null
            case "a": self = .array(try c.decode([TaggedValue].self))
            default: self = .object(try c.decode([Member].self))
            }
        }

        /// Whether `value` is what Python produced.
        func matches(_ value: TemplateValue) -> Bool {
            switch (self, value) {
            case (.null, .null): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.int(a), .int(b)): return a == String(b)
            case let (.float(a), .float(b)):
                if a == "nan" { return b.isNaN }
                if a == "inf" { return b == .infinity }
                if a == "-inf" { return b == -.infinity }
                return Double(a).map { $0 == b && $0.sign == b.sign } ?? false
            case let (.string(a), .string(b)): return a == b
            case let (.array(a), .array(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.matches($1) }
            case let (.object(a), .object(b)):
                return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value.matches($1.value) }
            default: return false
            }
        }
    }

    struct Corpus: Decodable { let cases: [Case] }

    static let cases: [Case] = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("json/python-json.json")),
              let corpus = try? JSONDecoder().decode(Corpus.self, from: data) else { return [] }
        return corpus.cases
    }()

    /// (byte, line, column) from the reader's error message.
    static func position(_ error: Error) -> (byte: Int, line: Int, column: Int)? {
        let text = "\(error)"
        guard let range = text.range(of: #"at byte (\d+) \(line (\d+), column (\d+)\)"#, options: .regularExpression) else { return nil }
        let numbers = text[range].split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return numbers.count == 3 ? (numbers[0], numbers[1], numbers[2]) : nil
    }

    @Test("the corpus is there")
    func corpusLoads() {
        #expect(Self.cases.count >= 70)
    }

    @Test("values, refusals and error positions are Python's")
    func matchesPython() throws {
        for (index, item) in Self.cases.enumerated() {
            let data = item.bytes
            let shown = String(decoding: data.prefix(40), as: UTF8.self).debugDescription
            if let expected = item.value {
                let value = try TemplateValue.parse(data, path: "case\(index).json")
                #expect(expected.matches(value), "\(shown): \(value) is not Python's \(expected)")
                // The keyed tree reads the same documents.
                #expect((try? JSONValue.parse(data, path: "case\(index).json")) != nil, "\(shown)")
                continue
            }
            var caught: Error?
            do { _ = try TemplateValue.parse(data, path: "case\(index).json") } catch { caught = error }
            guard let caught else {
                Issue.record("\(shown): accepted, but Python says \(item.error ?? "")")
                continue
            }
            #expect("\(caught)".contains("case\(index).json"), "the error names the file: \(caught)")
            guard let at = Self.position(caught) else {
                Issue.record("\(shown): no position in \(caught)")
                continue
            }
            if let byte = item.byte {
                #expect(at.byte == byte, "\(shown): \(caught) — Python fails to decode UTF-8 at byte \(byte)")
            } else {
                #expect(at.line == item.line && at.column == item.column,
                        "\(shown): \(caught) — Python: \(item.error ?? "") at line \(item.line ?? 0) column \(item.column ?? 0)")
            }
            var keyedError: Error?
            do { _ = try JSONValue.parse(data, path: "case\(index).json") } catch { keyedError = error }
            #expect(keyedError.map { "\($0)" } == "\(caught)", "\(shown): both trees fail the same way")
        }
    }

    @Test("nesting beyond the limit is an error, not a stack overflow")
    func deepNesting() {
        let deep = Data(String(repeating: "[", count: 100_000).utf8)
        #expect(throws: MobileLLMError.self) { try TemplateValue.parse(deep, path: "deep.json") }
        #expect(throws: MobileLLMError.self) { try JSONValue.parse(deep, path: "deep.json") }
        let fine = Data((String(repeating: "[", count: 500) + String(repeating: "]", count: 500)).utf8)
        #expect((try? JSONValue.parse(fine, path: "ok.json")) != nil)
    }

    @Test("a repeated key keeps its last value at its first position")
    func duplicates() throws {
        let value = try TemplateValue.parse(Data(#"{"a":1,"b":2,"a":3}"#.utf8), path: "d.json")
        #expect(value == .object([(key: "a", value: .int(3)), (key: "b", value: .int(2))]))
        #expect(try JSONValue.parse(Data(#"{"a":1,"a":2.5}"#.utf8), path: "d.json") == .object(["a": .number(2.5)]))
    }
}
