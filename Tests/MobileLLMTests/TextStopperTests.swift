import Foundation
import MobileLLMTools
@testable import MobileLLM
import Testing

/// `TextStopper` (generate --stop, --stop-at-boxed) against a non-incremental oracle: the whole text searched at
/// once, and the box located with `BoxedAnswer` (the harness-style extractor). Every text
/// is streamed in many random splits; the streamed output must equal the oracle whatever the split, only ever
/// grow along it, and hold back less than the longest stop string.
@Suite("TextStopper")
struct TextStopperTests {
    /// Deterministic splits (SplitMix64).
    struct Splitter {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// `text` cut into pieces of 0...4 scalars.
        mutating func pieces(_ text: String) -> [String] {
            var scalars = Array(text.unicodeScalars)[...]
            var out: [String] = []
            while !scalars.isEmpty {
                let n = min(Int(next() % 5), scalars.count)
                var piece = String.UnicodeScalarView()
                piece.append(contentsOf: scalars.prefix(n))
                out.append(String(piece))
                scalars = scalars.dropFirst(n)
            }
            return out
        }
    }

    /// The oracle: `text` up to the first stop string to complete (the occurrence ending first, of those the longest;
    /// a naive search of every occurrence in the whole text), or
    /// through the closing brace of the first box: the end of the shortest prefix in which `BoxedAnswer` finds one.
    static func expected(_ text: String, stops: [String], boxed: Bool) -> (String, TextStopper.Reason?) {
        let scalars = Array(text.unicodeScalars)
        func prefix(_ n: Int) -> String {
            var out = String.UnicodeScalarView()
            out.append(contentsOf: scalars[..<n])
            return String(out)
        }
        var end = scalars.count
        var reason: TextStopper.Reason?
        var occurrences: [(start: Int, end: Int)] = []
        for stop in stops.map({ Array($0.unicodeScalars) }) where !stop.isEmpty {
            for start in scalars.indices where scalars[start...].starts(with: stop) {
                occurrences.append((start, start + stop.count))
            }
        }
        if let first = occurrences.min(by: { ($0.end, $0.start) < ($1.end, $1.start) }) {
            end = first.start
            reason = .stopString
        }
        // The box wins when it closes before the stop string completes.
        if boxed, let close = (1...max(scalars.count, 1)).first(where: { BoxedAnswer.lastBoxedContent(in: prefix($0)) != nil }),
           close < (occurrences.map(\.end).min() ?? Int.max) {
            end = close
            reason = .boxed
        }
        return (prefix(end), reason)
    }

    static let cases: [(text: String, stops: [String], boxed: Bool)] = [
        ("Hello world. User: next question", ["User:"], false),
        ("aaab then aab", ["aab"], false),                     // a stop whose start repeats inside it
        ("abab abc", ["abc", "ab "], false),                   // several stops; the earliest wins
        ("x abcd abc", ["abcd", "bc"], false),                 // a stop inside another: the first to complete wins
        ("x abcd abc", ["abcd", "cd"], false),                 // ending together: the longer wins
        ("no stop here at all", ["STOP", "\n\n"], false),
        ("STOP at the start", ["STOP"], false),
        ("ends with a partial sto", ["stop"], false),          // held back, then released at the end
        ("café 🙂 done 🙂🙂 tail", ["🙂🙂"], false),
        ("e\u{301} combining", ["\u{301} comb"], false),        // a stop starting with a combining mark
        ("So the answer is \\boxed{\\frac{1}{2}}. More text", [], true),
        ("First \\boxed{42} and \\boxed{7}", ["and"], true),
        ("Stop before the box: END \\boxed{1}", ["END"], true),
        ("The box \\boxed{ab} then the stop", ["}"], true),
        ("never closes \\boxed{1 + {2}", [], true),
    ]

    @Test("streamed output equals the whole-text oracle for every split; grows monotonically; bounded hold-back")
    func oracle() {
        var splitter = Splitter(state: 42)
        for (text, stops, boxed) in Self.cases {
            let (want, wantReason) = Self.expected(text, stops: stops, boxed: boxed)
            let longest = stops.map { $0.unicodeScalars.count }.max() ?? 0
            for _ in 0..<50 {
                var stopper = TextStopper(stopStrings: stops, stopAtBoxed: boxed)
                var out = ""
                var seen = 0
                for piece in splitter.pieces(text) {
                    out += stopper.push(piece)
                    seen += piece.unicodeScalars.count
                    #expect(want.unicodeScalars.starts(with: out.unicodeScalars), "\(text): \(out)")
                    if stopper.reason != nil { break }
                    #expect(seen - out.unicodeScalars.count < max(longest, 1), "\(text): held back too much")
                }
                out += stopper.finish()
                #expect(out == want, "\(text) with \(stops)")
                #expect(stopper.reason == wantReason, "\(text)")
            }
        }
    }

    @Test("nothing to watch: pieces pass through unchanged, empty stop strings are ignored")
    func inactive() {
        var stopper = TextStopper(stopStrings: [""])
        #expect(stopper.isInactive)
        #expect(stopper.push("ab") == "ab" && stopper.push("") == "" && stopper.finish() == "")
        var ended = TextStopper(stopStrings: ["b"])
        #expect(ended.push("abc") == "a" && ended.reason == .stopString)
        #expect(ended.push("more") == "" && ended.finish() == "")
    }

    @Test("BoxedCloseDetector.prefixThroughClose cuts the piece after the closing brace")
    func boxedPrefix() {
        var detector = BoxedCloseDetector()
        #expect(detector.prefixThroughClose(of: "x \\box") == nil)
        #expect(detector.prefixThroughClose(of: "ed{1{2}") == nil)
        #expect(detector.prefixThroughClose(of: "3}}. tail") == "3}")  // \boxed{1{2}3}
        #expect(detector.closed)
        #expect(detector.prefixThroughClose(of: "\\boxed{4}") == nil)
        var plain = BoxedCloseDetector()
        #expect(plain.prefixThroughClose(of: "\\boxed 5 and } {") == nil && !plain.closed)
    }
}
