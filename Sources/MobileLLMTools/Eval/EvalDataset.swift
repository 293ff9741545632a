import Foundation
import MobileLLM

/// A benchmark `mobilellm eval` knows how to read and score.
public enum EvalTask: String, Sendable, CaseIterable, Codable {
    /// GSM8K: rows `{"question", "answer": "...#### 72"}`; the reference is the text after `####`, commas removed.
    case gsm8k
    /// MATH-500: rows `{"problem", "answer", ...}` (or `question`; without `answer`, the last `\boxed{}` of
    /// `solution`).
    case math500
    /// AIME: rows `{"problem" | "question", "answer"}` (integer answers; `Problem`/`Question`/`Answer`/`ID` too).
    case aime
}

/// One question of a dataset.
public struct EvalItem: Sendable, Equatable {
    /// The row's `id` (`ID`, `idx`, `unique_id`), or its 0-based position among the rows when it has none.
    public let id: String
    /// The question as given to the model.
    public let question: String
    /// The reference answer (before normalization).
    public let reference: String

    /// An item.
    public init(id: String, question: String, reference: String) {
        self.id = id
        self.question = question
        self.reference = reference
    }
}

/// Reads evaluation datasets (JSONL, one object per line; blank lines are skipped).
public enum EvalDataset {
    /// The items of `path` read as `task` rows. Throws `invalidFile` naming the file, the line and the field for a
    /// line that is not a JSON object, a missing or empty question or answer, or a GSM8K answer without `####`;
    /// `fileNotFound` when the file cannot be read.
    public static func load(path: String, task: EvalTask) throws -> [EvalItem] {
        let rows = try JSONLines.read(path: path)
        var items: [EvalItem] = []
        var seen: Set<String> = []
        for (position, (line, row)) in rows.enumerated() {
            let item = try parse(row, task: task, position: position, location: "\(path):\(line)")
            guard seen.insert(item.id).inserted else {
                throw MobileLLMError.invalidFile(path: "\(path):\(line)", field: "id", problem: "duplicate id \"\(item.id)\" (ids must be unique)")
            }
            items.append(item)
        }
        guard !items.isEmpty else { throw MobileLLMError.invalidFile(path: path, field: "(rows)", problem: "no rows; expected one JSON object per line") }
        return items
    }

    private static func parse(_ row: TemplateValue, task: EvalTask, position: Int, location: String) throws -> EvalItem {
        let id = try JSONLines.text(row, location: location, keys: ["id", "ID", "idx", "unique_id"]) ?? String(position)
        let questionKeys = task == .gsm8k ? ["question", "Question"] : ["problem", "Problem", "question", "Question"]
        guard let question = try JSONLines.text(row, location: location, keys: questionKeys), !question.trimmingSpaces().isEmpty else {
            throw missing(questionKeys, in: location, expected: "a non-empty string, the question")
        }
        let reference: String
        switch task {
        case .gsm8k:
            guard let answer = try JSONLines.text(row, location: location, keys: ["answer", "Answer"]) else {
                throw missing(["answer"], in: location, expected: "a string ending in \"#### <number>\"")
            }
            guard let marker = answer.range(of: "####", options: .backwards) else {
                throw MobileLLMError.invalidFile(path: location, field: "answer", problem: "no \"####\" before the final answer (expected GSM8K's \"... #### 72\")")
            }
            reference = String(answer[marker.upperBound...]).replacingOccurrences(ofAll: [",": ""]).trimmingSpaces()
        case .math500:
            if let answer = try JSONLines.text(row, location: location, keys: ["answer", "Answer"]) {
                reference = answer.trimmingSpaces()
            } else if let solution = try JSONLines.text(row, location: location, keys: ["solution", "Solution"]) {
                guard let boxed = BoxedAnswer.lastBoxedContent(in: solution) else {
                    throw MobileLLMError.invalidFile(path: location, field: "solution", problem: "no \"answer\" field and no \\boxed{...} in the solution to take the reference from")
                }
                reference = boxed.trimmingSpaces()
            } else {
                throw missing(["answer", "solution"], in: location, expected: "the reference answer (or a solution ending in \\boxed{...})")
            }
        case .aime:
            guard let answer = try JSONLines.text(row, location: location, keys: ["answer", "Answer"]) else {
                throw missing(["answer", "Answer"], in: location, expected: "the integer answer (a number or a string)")
            }
            reference = answer.trimmingSpaces()
        }
        guard !reference.isEmpty else {
            throw MobileLLMError.invalidFile(path: location, field: "answer", problem: "empty reference answer")
        }
        return EvalItem(id: id, question: question.trimmingSpaces(), reference: reference)
    }

    private static func missing(_ keys: [String], in location: String, expected: String) -> MobileLLMError {
        .invalidFile(path: location, field: keys[0], problem: "missing (looked for \(keys.map { "\"\($0)\"" }.joined(separator: ", "))); expected \(expected)")
    }
}

/// JSON Lines reading shared by datasets, scripted responses and the CLI's `generate --prompts-jsonl`.
public enum JSONLines {
    /// The objects of a JSONL file with their 1-based line numbers; blank lines are skipped. Throws
    /// `fileNotFound` when the file cannot be read, `invalidFile` ("path:line", field "(line)") for a line that is
    /// not a JSON object.
    public static func read(path: String) throws -> [(line: Int, object: TemplateValue)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MobileLLMError.fileNotFound(path: path, reason: "cannot read the file")
        }
        var rows: [(Int, TemplateValue)] = []
        for (index, bytes) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            guard !bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) else { continue }
            let parsed: TemplateValue
            do {
                parsed = try TemplateValue.parse(Data(bytes), path: "\(path):\(line)")
            } catch {
                throw MobileLLMError.invalidFile(path: "\(path):\(line)", field: "(line)", problem: "not valid JSON (expected one JSON object per line): \(error)")
            }
            guard case .object = parsed else {
                throw MobileLLMError.invalidFile(path: "\(path):\(line)", field: "(line)", problem: "not a JSON object (expected one object per line)")
            }
            rows.append((line, parsed))
        }
        return rows
    }

    /// The first of `keys` present in `row`, as text (a string, or a number; integers without a decimal point); nil
    /// when none is present. Throws `invalidFile` at `location` when the value is of another type.
    public static func text(_ row: TemplateValue, location: String, keys: [String]) throws -> String? {
        guard let key = keys.first(where: { row[$0] != nil }), let value = row[key] else { return nil }
        switch value {
        case let .string(text): return text
        case let .int(number): return String(number)
        case let .float(number):
            if number.rounded() == number, Swift.abs(number) < 1e15 { return String(Int64(number)) }
            return "\(number)"
        case .null: throw MobileLLMError.invalidFile(path: location, field: key, problem: "expected a string or a number, found null")
        case .bool: throw MobileLLMError.invalidFile(path: location, field: key, problem: "expected a string or a number, found a boolean")
        case .array: throw MobileLLMError.invalidFile(path: location, field: key, problem: "expected a string or a number, found an array")
        case .object: throw MobileLLMError.invalidFile(path: location, field: key, problem: "expected a string or a number, found an object")
        }
    }
}
