import Foundation
import Testing
@testable import MobileLLM
@testable import MobileLLMTools

/// Rows of a fixture JSONL file written by scripts/make_eval_fixtures.py.
func evalFixtureRows(_ name: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: Fixtures.path("eval/" + name), encoding: .utf8)
    return try text.split(separator: "\n").map { line in
        guard let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return row
    }
}

/// Answer equivalence and extraction against math-verify's labels (scripts/make_eval_fixtures.py).
@Suite struct EvalScoringTests {
    @Test func pairsAgreeWithReferenceLabels() throws {
        let rows = try evalFixtureRows("pairs.jsonl")
        #expect(rows.count >= 100)
        var disagreements: [String] = []
        for row in rows {
            let prediction = try #require(row["prediction"] as? String)
            let reference = try #require(row["reference"] as? String)
            let expected = try #require(row["expected"] as? Bool)
            let verdict = AnswerGrader.isEquivalent(prediction, reference)
            if verdict != expected {
                disagreements.append("\(prediction) vs \(reference): got \(verdict), expected \(expected) \(row["reason"] as? String ?? "")")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }

    @Test func everyOverrideOfMathVerifyIsExplained() throws {
        // The fixture may depart from math-verify only with a written reason.
        for row in try evalFixtureRows("pairs.jsonl") where (row["expected"] as? Bool) != (row["math_verify"] as? Bool) {
            let reason = row["reason"] as? String ?? ""
            #expect(!reason.isEmpty, "\(row)")
        }
    }

    @Test func boxedExtractionAgreesWithReference() throws {
        let rows = try evalFixtureRows("boxed.jsonl")
        #expect(rows.count >= 15)
        for row in rows {
            let response = try #require(row["response"] as? String)
            let expected = row["expected"] as? String  // NSNull → nil
            #expect(BoxedAnswer.lastBoxedContent(in: response) == expected, "\(response)")
            if let mathVerify = row["math_verify"] as? String, mathVerify != expected {
                #expect(!(row["reason"] as? String ?? "").isEmpty, "override without a reason: \(response)")
            }
        }
    }

    @Test func extractorFallsBackLikeTheHarness() {
        // Hand-written inputs; the expectations follow the harness's documented extraction order.
        #expect(AnswerExtractor.extract(from: "so \\boxed{3} and then \\boxed{4}") == .init(text: "4", method: .boxed))
        #expect(AnswerExtractor.extract(from: "Cut off: \\boxed{12") == .init(text: "12", method: .unclosedBoxed))
        #expect(AnswerExtractor.extract(from: "The answer is 18 dollars.") == .init(text: "18 dollars.", method: .answerIs))
        #expect(AnswerExtractor.extract(from: "I think 3, then 1,250 total") == .init(text: "1250", method: .lastNumber))
        #expect(AnswerExtractor.extract(from: "The final answer is $\\frac{1}{2}$. I hope it is correct.") == .init(text: "\\frac{1}{2}", method: .minerva))
        #expect(AnswerExtractor.extract(from: "no digits at all") == nil)
        #expect(EvalRunner.score(response: "The answer is 18 dollars.", reference: "18").correct)
        #expect(!EvalRunner.score(response: "nothing", reference: "18").correct)
    }

    @Test func parserReadsLatexAndAscii() throws {
        func value(_ text: String) -> Double? { MathParser.parse(text)?.evaluate()?.doubleValue }
        #expect(value("\\frac12") == 0.5)
        #expect(value("2^10") == 1024)
        #expect(value("-2^2") == -4)
        #expect(value("\\sqrt[3]{-8}") == -2)
        #expect(value("2\\cdot 3 + 4 \\div 2") == 8)
        #expect(value("\\left( 1 + 2 \\right) \\times 3") == 9)
        #expect(value("|{-3}|") == 3)
        #expect(value("sqrt(16)*2") == 8)
        #expect(MathParser.parse("\\frac{1}{0}")?.evaluate() == nil)
        #expect(MathParser.parse("1, 2") == nil)
        #expect(MathParser.parse("\\unknowncommand{2}") == nil)
        #expect(MathParser.parse("x_1 + x_{2}")?.variables == ["x_1", "x_2"])
        // Exact arithmetic: 1/3 + 1/6 is exactly 1/2.
        #expect(MathParser.parse("\\frac13 + \\frac16")?.evaluate() == .exact(Rational(1, 2)!))
        #expect(MathParser.parse("0.1 + 0.2")?.evaluate() == .exact(Rational(3, 10)!))
    }

    @Test func hostileAnswersDoNotCrash() {
        // Deep nesting, huge numbers and powers, overflowing factorials: a verdict, never a trap.
        let deep = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(!AnswerGrader.isEquivalent(deep, "2"))
        #expect(!AnswerGrader.isEquivalent("99999999999999999999999999^99999999", "1"))
        #expect(!AnswerGrader.isEquivalent("1000!", "5"))
        #expect(!AnswerGrader.isEquivalent("\\frac{", "5"))
        #expect(!AnswerGrader.isEquivalent("}}}{{{", "5"))
        #expect(!AnswerGrader.isEquivalent("hundred hundred hundred hundred hundred hundred hundred hundred hundred hundred hundred", "1"))
        #expect(AnswerGrader.isEquivalent("9223372036854775807", "9223372036854775807"))
        // A long flat sum parses (deep left-leaning tree) and evaluates exactly.
        let terms = Array(repeating: "1", count: 900).joined(separator: "+")
        #expect(AnswerGrader.isEquivalent(terms, "900"))
        // An unclosed box can leave a whole response as the answer: compared as text only, quickly.
        let long = String(repeating: "\\text{a} + x^{2} ", count: 2000)
        #expect(!AnswerGrader.isEquivalent(long, "5"))
        #expect(AnswerGrader.isEquivalent("−3 × 2", "-6"))
        #expect(Rational(Int64.max, 1).flatMap { $0 * $0 } == nil)
    }

    @Test func randomLatexNeverCrashes() {
        // Seeded random soup of LaTeX pieces through extraction, normalization, parsing and grading: any verdict is
        // fine as long as there is one, and an answer equals itself.
        let pieces = ["\\frac", "{", "}", "(", ")", "[", "]", "\\sqrt", "^", "_", "x", "y", "2", "0", "9", ".", ",", "=",
                      "\\pi", "!", "|", "\\left", "\\right", "\\boxed", "\\text", " ", "-", "+", "/", "*", "%", "$",
                      "\\pm", "\\begin{pmatrix}", "&", "\\\\", "\\end{pmatrix}", "\\infty", "°", " and ", "five",
                      "hundred", "\\log_", "\\binom", "\\cdot", "1,000", "\\dfrac", "cm", "\\in", "e", "\\{", "\\}"]
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<800 {
            let count = Int(generator.next() % 12) + 1
            let text = (0..<count).map { _ in pieces[Int(generator.next() % UInt64(pieces.count))] }.joined()
            let other = (0..<count).map { _ in pieces[Int(generator.next() % UInt64(pieces.count))] }.joined()
            _ = AnswerGrader.isEquivalent(text, other)
            _ = EvalRunner.score(response: "so \\boxed{" + text, reference: other)
            if !AnswerNormalizer.compact(text).isEmpty {
                #expect(AnswerGrader.isEquivalent(text, text), "\(text)")
            }
        }
    }
}
