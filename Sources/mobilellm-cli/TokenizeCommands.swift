import ArgumentParser
import Foundation
import MobileLLM

/// Reads a JSON Lines file: one JSON value per non-empty line, parsed with `parse`. Errors name the file and line.
func readJSONLines<T>(_ path: String, _ parse: (JSONValue, Int) throws -> T) throws -> [T] {
    let data = try readWholeFile(path)
    var results: [T] = []
    var lineNumber = 0
    for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        lineNumber += 1
        var slice = line
        if slice.last == UInt8(ascii: "\r") { slice = slice.dropLast() }
        if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
        let value: JSONValue
        do {
            value = try JSONValue.parseFast(Data(slice), path: path)
        } catch {
            throw MobileLLMError.invalidFile(path: path, field: "line \(lineNumber)", problem: "not a JSON value")
        }
        results.append(try parse(value, lineNumber))
    }
    return results
}

/// A JSON array of token ids.
func jsonIDs(_ ids: [Int32]) -> String {
    TemplateValue.ints(ids).jsonText
}

/// Writes lines to stdout in large chunks.
struct LineWriter {
    private var buffer = ""

    mutating func write(_ line: String) {
        buffer += line
        buffer += "\n"
        if buffer.utf8.count > 1 << 20 { flush() }
    }

    mutating func flush() {
        FileHandle.standardOutput.write(Data(buffer.utf8))
        buffer = ""
    }
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn text into token ids.",
        discussion: "Output: {\"tokens\": [...]} for --text; for --input-jsonl (one JSON string per line) one JSON array of ids per line, in order. --model is a model directory or a directory holding tokenizer.json (config.json not needed), a tokenizer.json file, or a .gguf file."
    )

    @Option(name: .long, help: ArgumentHelp("A model directory, a directory with tokenizer.json, a tokenizer.json file, or a .gguf file (default: the built-in default model).",
                                            discussion: defaultModelHelp))
    var model: String?

    @Option(name: .long, help: "The text to tokenize.")
    var text: String?

    @Option(name: .customLong("input-jsonl"), help: "A file with one JSON string per line.")
    var inputJsonl: String?

    @Flag(name: .long, help: "Add the tokenizer's special tokens (e.g. BOS), as HF's add_special_tokens=True.")
    var addSpecial = false

    @Flag(name: .long, help: "Turn special-token text such as <|eot_id|> into its id (otherwise it is tokenized as text).")
    var parseSpecial = false

    func validate() throws {
        guard (text == nil) != (inputJsonl == nil) else { throw ValidationError("give exactly one of --text or --input-jsonl") }
    }

    func run() throws {
        let tokenizer = try Tokenizer.load(path: resolvedModelPath(model))
        if let text {
            emit((["tokens": .ints(tokenizer.encode(text, addSpecial: addSpecial, parseSpecial: parseSpecial))] as TemplateValue).jsonText)
            return
        }
        guard let inputJsonl else { return }
        let texts = try readJSONLines(inputJsonl) { value, line -> String in
            guard case let .string(text) = value else {
                throw MobileLLMError.invalidFile(path: inputJsonl, field: "line \(line)", problem: "expected a JSON string, found \(value.typeName)")
            }
            return text
        }
        var writer = LineWriter()
        for ids in tokenizer.encodeBatch(texts, addSpecial: addSpecial, parseSpecial: parseSpecial) {
            writer.write(jsonIDs(ids))
        }
        writer.flush()
    }
}

struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Turn token ids into text.",
        discussion: "Output: {\"text\": \"...\"} for --tokens; for --input-jsonl (one JSON array of ids per line) one JSON string per line, in order. Ids outside the vocabulary are an error."
    )

    @Option(name: .long, help: ArgumentHelp("A model directory, a directory with tokenizer.json, a tokenizer.json file, or a .gguf file (default: the built-in default model).",
                                            discussion: defaultModelHelp))
    var model: String?

    @Option(name: .long, help: "Comma-separated token ids, e.g. 1,2,3.")
    var tokens: String?

    @Option(name: .customLong("input-jsonl"), help: "A file with one JSON array of token ids per line.")
    var inputJsonl: String?

    @Flag(name: .long, help: "Leave special tokens out of the text.")
    var skipSpecial = false

    func validate() throws {
        guard (tokens == nil) != (inputJsonl == nil) else { throw ValidationError("give exactly one of --tokens or --input-jsonl") }
    }

    func run() throws {
        let tokenizer = try Tokenizer.load(path: resolvedModelPath(model))
        if let tokens {
            emit((["text": .string(try tokenizer.decode(try parseTokenList(tokens), skipSpecial: skipSpecial))] as TemplateValue).jsonText)
            return
        }
        guard let inputJsonl else { return }
        let lists = try readJSONLines(inputJsonl) { value, line -> [Int32] in
            guard case let .array(items) = value else {
                throw MobileLLMError.invalidFile(path: inputJsonl, field: "line \(line)", problem: "expected a JSON array of token ids, found \(value.typeName)")
            }
            return try items.map { item in
                guard case let .number(number) = item, number.rounded() == number, number >= -2_147_483_648, number <= 2_147_483_647 else {
                    throw MobileLLMError.invalidFile(path: inputJsonl, field: "line \(line)", problem: "expected integer token ids, found \(item.typeName)")
                }
                return Int32(number)
            }
        }
        var writer = LineWriter()
        for ids in lists {
            writer.write(JSONWriter.quote(try tokenizer.decode(ids, skipSpecial: skipSpecial)))
        }
        writer.flush()
    }
}
