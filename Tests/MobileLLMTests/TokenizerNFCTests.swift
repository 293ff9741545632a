import Foundation
import Testing
@testable import MobileLLM

/// The NFC normalizer against Python's `unicodedata.normalize('NFC', ...)` on the hard cases of
/// Tests/Fixtures/tokenizer/nfc_cases.json (scripts/make_unicode_tables.py), and its use in tokenizer.json.
@Suite("Tokenizer NFC normalization")
struct TokenizerNFCTests {
    @Test("the generated tables parse to the counts the generator wrote in their header")
    func tableCounts() {
        let data = UnicodeNormalization.data
        #expect(UnicodeNormalizationTables.unicodeVersion == "14.0.0")
        #expect(data.combiningClassCount == 912)
        #expect(data.decompositions.count == 2061)
        #expect(data.exclusionCount == 1120)
        #expect(data.compositions.count == 941)
        #expect(UnicodeNormalization.combiningClass(0x0301) == 230)
        #expect(UnicodeNormalization.combiningClass(0x0041) == 0)
        #expect(UnicodeNormalization.combiningClass(0x1E94A) == 7)
        #expect(UnicodeNormalization.combiningClass(0x10FFFF) == 0)
    }

    @Test("every hard case normalizes exactly as Python's unicodedata (Unicode 14.0)")
    func fixtureCases() throws {
        let path = TokenizerFixtures.directory.appendingPathComponent("nfc_cases.json").path
        let document = try FastJSON.load(path: path)
        #expect(document["unicode_version"]?.text == UnicodeNormalizationTables.unicodeVersion,
                "nfc_cases.json was made with other Unicode data than the tables: regenerate both with scripts/make_unicode_tables.py")
        guard case let .object(groups)? = document["groups"] else {
            Issue.record("nfc_cases.json has no groups")
            return
        }
        var total = 0, failures = 0, hfDiffers = 0, changed = 0
        for (why, rows) in groups {
            guard case let .array(items) = rows else { continue }
            for item in items {
                guard case let .array(fields) = item, fields.count >= 2, let input = fields[0].text, let want = fields[1].text else {
                    Issue.record("malformed case in \(why)")
                    continue
                }
                total += 1
                if fields.count > 2 { hfDiffers += 1 }
                if Array(want.unicodeScalars) != Array(input.unicodeScalars) { changed += 1 }
                let got = UnicodeNormalization.nfc(input)
                // Compare scalars: Swift's String == is canonical equivalence, which would hide every bug here.
                if Array(got.unicodeScalars) != Array(want.unicodeScalars) {
                    failures += 1
                    if failures <= 10 {
                        Issue.record("\(why): \(scalars(input)) -> ours \(scalars(got)), Python \(scalars(want))")
                    }
                }
                // NFC is idempotent, and the quick check must accept what NFC produced.
                let again = UnicodeNormalization.nfc(got)
                if Array(again.unicodeScalars) != Array(got.unicodeScalars) {
                    failures += 1
                    Issue.record("\(why): not idempotent on \(scalars(input))")
                }
            }
        }
        print("[nfc_cases] \(total) cases (\(changed) changed by NFC), \(failures) mismatches with Python; HF's NFC differs from Python on \(hfDiffers)")
        #expect(total > 5000)
        #expect(failures == 0)
    }

    @Test("invalid UTF-8 passes through unchanged and composes with nothing")
    func invalidBytes() {
        func nfc(_ bytes: [UInt8]) -> [UInt8] {
            bytes.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return [] }
                return UnicodeNormalization.nfc(base, 0, buffer.count) ?? bytes
            }
        }
        #expect(nfc([0x61, 0xCC, 0x81]) == [0xC3, 0xA1])                       // a + U+0301 -> á
        #expect(nfc([0x61, 0xFF, 0xCC, 0x81]) == [0x61, 0xFF, 0xCC, 0x81])     // a raw byte blocks composition
        #expect(nfc([0xCC]) == [0xCC])                                         // a lone lead byte
        #expect(nfc([0xCC, 0x81, 0xCC]) == [0xCC, 0x81, 0xCC])
        #expect(nfc([0xED, 0xA0, 0x80, 0xCC, 0x81]) == [0xED, 0xA0, 0x80, 0xCC, 0x81])  // a surrogate's bytes
        #expect(nfc([0xE1, 0x84, 0x80, 0xE1, 0x85, 0xA1]) == [0xEA, 0xB0, 0x80])        // U+1100 U+1161 -> U+AC00
        #expect(nfc([]) == [])
    }

    @Test("a long run of marks in reverse class order is reordered in O(n log n), then composed")
    func longMarkRun() {
        let pairs = 50_000
        let text = "a" + String(repeating: "\u{0301}\u{0316}", count: pairs)
        let clock = ContinuousClock()
        let start = clock.now
        let result = Array(UnicodeNormalization.nfc(text).unicodeScalars)
        let elapsed = clock.now - start
        // a + U+0301 compose (U+0316, class 220, sorts first and does not block); the other acutes stay.
        #expect(result.count == 2 * pairs)
        #expect(result.first?.value == 0xE1)
        #expect(result.dropFirst().prefix(pairs).allSatisfy { $0.value == 0x0316 })
        #expect(result.dropFirst(1 + pairs).allSatisfy { $0.value == 0x0301 })
        #expect(elapsed < .seconds(20), "\(elapsed)")
    }

    @Test("a tokenizer.json NFC normalizer composes the text before BPE; other normalizers are refused by name")
    func tokenizerJSONNormalizer() throws {
        let plain = try Tokenizer.load(path: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON()))
        let nfc = try Tokenizer.load(path: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON(normalizer: #"{"type": "NFC"}"#)))
        let sequence = try Tokenizer.load(path: try TinyVocabulary.write(
            TinyVocabulary.tokenizerJSON(normalizer: #"{"type": "Sequence", "normalizers": [{"type": "NFC"}]}"#)))
        let decomposed = "he\u{0301}llo"
        #expect(nfc.normalizer == .nfc && sequence.normalizer == .nfc && plain.normalizer == nil)
        let composedIDs = plain.encode("h\u{00E9}llo", addSpecial: false, parseSpecial: true)
        #expect(nfc.encode(decomposed, addSpecial: false, parseSpecial: true) == composedIDs)
        #expect(sequence.encode(decomposed, addSpecial: false, parseSpecial: true) == composedIDs)
        #expect(plain.encode(decomposed, addSpecial: false, parseSpecial: true) != composedIDs)
        #expect(try nfc.decode(composedIDs, skipSpecial: false) == "h\u{00E9}llo")
        do {
            _ = try Tokenizer.load(path: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON(
                normalizer: #"{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}"#)))
            Issue.record("a Lowercase normalizer was accepted")
        } catch let error as MobileLLMError {
            guard case let .unsupported(path, feature) = error else {
                Issue.record("expected .unsupported, got \(error)")
                return
            }
            #expect(path.hasSuffix("tokenizer.json"))
            #expect(feature.contains("Lowercase") && feature.contains("normalizers[1]"), "\(feature)")
        }
    }

    @Test("added tokens are split out of the raw text before NFC, and normalized ones match the normalized text")
    func addedTokensAroundNFC() throws {
        let added = #"""
        [{"id": 261, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
         {"id": 262, "content": "he\u0301", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}]
        """#
        let json = TinyVocabulary.tokenizerJSON(normalizer: #"{"type": "NFC"}"#, added: added)
        let tokenizer = try Tokenizer.load(path: try TinyVocabulary.write(json))
        // "e" + U+0301 right after a special token: the special token is cut out first, so the mark stays alone.
        let ids = tokenizer.encode("<|im_end|>\u{0301}x", addSpecial: false, parseSpecial: true)
        #expect(ids.first == 261)
        #expect(try tokenizer.decode(ids, skipSpecial: true) == "\u{0301}x")
        // The normalized token's content (e + U+0301) is normalized too, so it matches precomposed text.
        #expect(tokenizer.encode("h\u{00E9}", addSpecial: false, parseSpecial: true) == [262])
        #expect(tokenizer.encode("he\u{0301}", addSpecial: false, parseSpecial: true) == [262])
    }

    private func scalars(_ text: String) -> String {
        text.unicodeScalars.map { String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
    }
}
