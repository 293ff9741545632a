import Foundation
import Testing
@testable import MobileLLM

/// Compares our ids and texts with HF `tokenizers` on the generated corpus (see scripts/make_tokenizer_fixtures.py).
@Suite("Tokenizer conformance with Hugging Face")
struct TokenizerConformanceTests {
    struct Tally {
        var compared = 0
        var mismatches: [String: Int] = [:]
        var examples: [String] = []

        mutating func check(_ kind: String, _ ok: Bool, _ detail: @autoclosure () -> String) {
            compared += 1
            guard !ok else { return }
            mismatches[kind, default: 0] += 1
            if examples.count < 8 { examples.append("\(kind): \(detail())") }
        }
    }

    func runCorpus(tokenizerPath: String, expectedFile: String) throws {
        try runCorpus(tokenizer: try TokenizerFixtures.tokenizer(tokenizerPath), expectedFile: expectedFile)
    }

    /// Compares `tokenizer` with the rows of `expectedFile`: one per corpus.jsonl line after the prefix line, then
    /// optionally extra rows that carry their own `text`.
    func runCorpus(tokenizer: Tokenizer, expectedFile: String) throws {
        var corpus = try TokenizerFixtures.corpus()
        let rows = try TokenizerFixtures.jsonLines(expectedFile)
        try #require(rows.count >= corpus.count + 1, "\(expectedFile) does not match corpus.jsonl: regenerate the fixtures")
        for row in rows.dropFirst(corpus.count + 1) {
            let text = try #require(row["text"]?.text, "\(expectedFile): an extra row without \"text\"")
            corpus.append(text)
        }
        let prefix = rows[0]["prefix"]?.ids ?? []
        let prefixText = rows[0]["prefix_text"]?.text ?? ""
        var tally = Tally()
        for (index, text) in corpus.enumerated() {
            let row = rows[index + 1]
            let plain = row["plain"]?.ids ?? []
            let special = row["special"]?.ids ?? (prefix + plain)
            let literal = row["literal"]?.ids ?? plain
            let decoded = row["decoded"]?.text ?? (prefixText + text)
            let decodedSkip = row["decoded_skip"]?.text ?? text
            let ourPlain = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
            tally.check("plain", ourPlain == plain, "#\(index) \(text.debugDescription.prefix(80)): ours \(ourPlain.prefix(24)) HF \(plain.prefix(24))")
            let ourSpecial = tokenizer.encode(text, addSpecial: true, parseSpecial: true)
            tally.check("special", ourSpecial == special, "#\(index) \(text.debugDescription.prefix(80))")
            let ourLiteral = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            tally.check("literal", ourLiteral == literal, "#\(index) \(text.debugDescription.prefix(80)): ours \(ourLiteral.prefix(24)) HF \(literal.prefix(24))")
            let ourDecoded = try tokenizer.decode(special, skipSpecial: false)
            // Decodes compare bytes: String == is canonical equivalence, which would hide normalization differences.
            tally.check("decoded", ourDecoded.utf8.elementsEqual(decoded.utf8), "#\(index) \(ourDecoded.debugDescription.prefix(80)) vs \(decoded.debugDescription.prefix(80))")
            let ourSkip = try tokenizer.decode(special, skipSpecial: true)
            tally.check("decoded_skip", ourSkip.utf8.elementsEqual(decodedSkip.utf8), "#\(index) \(ourSkip.debugDescription.prefix(80)) vs \(decodedSkip.debugDescription.prefix(80))")
            let roundTrip = try tokenizer.decode(ourLiteral, skipSpecial: false)
            // With NFC the round trip gives the NFC text (String == would be canonical equivalence, which Swift decides
            // with its own, newer Unicode data).
            let normalizedText = tokenizer.normalizer == .nfc ? UnicodeNormalization.nfc(text) : text
            tally.check("roundtrip", roundTrip.utf8.elementsEqual(normalizedText.utf8), "#\(index) \(text.debugDescription.prefix(80))")
            // Streaming: pieces concatenate to decode(), and never show U+FFFD the whole text does not have.
            for skip in [false, true] {
                var stream = tokenizer.makeStreamingDetokenizer(skipSpecial: skip)
                var pieces: [String] = []
                for id in special { pieces.append(try stream.push(id)) }
                pieces.append(stream.flush())
                let whole = skip ? decodedSkip : decoded
                tally.check("stream", pieces.joined().utf8.elementsEqual(whole.utf8), "#\(index) skip=\(skip)")
                if !whole.unicodeScalars.contains("\u{FFFD}") {
                    tally.check("stream-split", !pieces.contains { $0.unicodeScalars.contains("\u{FFFD}") }, "#\(index)")
                }
            }
        }
        let summary = tally.mismatches.isEmpty ? "all identical" : "\(tally.mismatches)"
        print("[\(expectedFile)] \(corpus.count) strings, \(tally.compared) comparisons (\(tally.compared - tally.mismatches.values.reduce(0, +)) identical): \(summary)")
        for example in tally.examples { Issue.record("\(expectedFile) mismatch \(example)") }
        #expect(tally.mismatches.isEmpty)
    }

    @Test("Llama-3 tokenizer.json: ids, specials, decode and streaming identical to HF on the corpus")
    func llama3Corpus() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.llama3Directory) else { return }
        try runCorpus(tokenizerPath: path, expectedFile: "llama3.expected.jsonl")
    }

    @Test("SmolLM2 GGUF vocabulary: ids, specials, decode and streaming identical to the reference on the corpus")
    func smollm2Corpus() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        try runCorpus(tokenizerPath: path, expectedFile: "smollm2.expected.jsonl")
    }

    @Test("Decoding random id sequences (split UTF-8 included) matches HF, whole and streamed")
    func decodeCases() throws {
        guard let llama = TokenizerFixtures.requireAsset(TokenizerFixtures.llama3Directory),
              let smol = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        try runDecodeCases(file: "decode_cases.json", tokenizers: [("llama3", try TokenizerFixtures.tokenizer(llama)),
                                                                     ("smollm2", try TokenizerFixtures.tokenizer(smol))])
    }

    /// Decodes each id sequence of `file` (keyed by tokenizer name) whole and streamed, against HF's text.
    func runDecodeCases(file: String, tokenizers: [(String, Tokenizer)]) throws {
        let path = TokenizerFixtures.directory.appendingPathComponent(file).path
        let cases = try FastJSON.load(path: path)
        for (name, tokenizer) in tokenizers {
            guard case let .array(items)? = cases[name] else { Issue.record("no \(name) cases"); continue }
            var failures = 0
            for item in items {
                let ids = item["ids"]?.ids ?? []
                for (skip, key) in [(false, "text"), (true, "text_skip")] {
                    let want = item[key]?.text ?? ""
                    let got = try tokenizer.decode(ids, skipSpecial: skip)
                    var stream = tokenizer.makeStreamingDetokenizer(skipSpecial: skip)
                    var streamed = ""
                    for id in ids { streamed += try stream.push(id) }
                    streamed += stream.flush()
                    if !got.utf8.elementsEqual(want.utf8) || !streamed.utf8.elementsEqual(want.utf8) {
                        failures += 1
                        if failures <= 5 { Issue.record("\(name) \(ids) skip=\(skip): ours \(got.debugDescription) streamed \(streamed.debugDescription) HF \(want.debugDescription)") }
                    }
                }
            }
            print("[\(file) \(name)] \(items.count * 2) decodes, \(failures) mismatches")
            #expect(failures == 0)
        }
    }
}
