// Times GrammarConstraint.restrict + accept per token while a JSON object is "generated" (its tokens replayed) on the
// Llama-3 128K vocabulary: the cost constrained decoding adds to every decode step.
//
//   scripts/bench_grammar.sh            (builds this package in release and runs it; needs MOBILELLM_ASSETS)
import Foundation
import MobileLLM

let assets = ProcessInfo.processInfo.environment["MOBILELLM_ASSETS"] ?? "../../.cache/assets"
let tokenizerPath = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : assets + "/llama3-tokenizer"

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

let schema = """
{"type": "object", "properties": {
  "id": {"type": "string", "format": "uuid"},
  "name": {"type": "string", "minLength": 1, "maxLength": 80},
  "email": {"type": "string"},
  "age": {"type": "integer", "minimum": 0, "maximum": 150},
  "member_since": {"type": "string", "format": "date"},
  "score": {"type": "number", "minimum": 0, "maximum": 100},
  "status": {"enum": ["active", "suspended", "closed"]},
  "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"},
              "postcode": {"type": "string", "maxLength": 10}, "country": {"type": "string", "minLength": 2, "maxLength": 2}},
              "required": ["street", "city", "country"], "additionalProperties": false},
  "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 8},
  "orders": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"},
             "quantity": {"type": "integer", "minimum": 1, "maximum": 1000}, "price": {"type": "number", "minimum": 0}},
             "required": ["sku", "quantity", "price"], "additionalProperties": false}},
  "notes": {"type": ["string", "null"]}
}, "required": ["id", "name", "age", "status", "address"], "additionalProperties": false}
"""

let instances = [
    """
    {"id": "3f2b8c1e-9d4a-4e7b-8a61-0c5d2e9f7b13", "name": "Ana María Oliveira", "email": "ana.oliveira@example.com.br", "age": 34, "member_since": "2019-07-14", "score": 87.5, "status": "active", "address": {"street": "Rua das Flores 123, apto 45", "city": "São Paulo", "postcode": "01310-100", "country": "BR"}, "tags": ["premium", "newsletter", "early-adopter"], "orders": [{"sku": "BK-2291-PT", "quantity": 2, "price": 49.9}, {"sku": "EL-0042-X", "quantity": 1, "price": 1299.0}], "notes": "Prefers contact by e-mail; speaks Portuguese and English."}
    """,
    """
    {
      "id": "a81bc81b-dead-4e5d-abff-90865d1e13b1",
      "name": "Jürgen Müller",
      "email": "j.mueller@example.de",
      "age": 58,
      "member_since": "2004-02-29",
      "score": 42,
      "status": "suspended",
      "address": {"street": "Hauptstraße 7", "city": "München", "postcode": "80331", "country": "DE"},
      "tags": ["legacy"],
      "orders": [{"sku": "HW-7781", "quantity": 12, "price": 3.75}],
      "notes": null
    }
    """,
]

let loadStart = now()
let tokenizer = try Tokenizer.load(path: tokenizerPath)
print(String(format: "tokenizer: %d tokens, loaded in %.0f ms", tokenizer.vocabularySize, (now() - loadStart) * 1000))
let endTokens: Set<Int32> = Set([tokenizer.eosTokenID].compactMap { $0 } + [tokenizer.tokenID(forPiece: "<|eot_id|>")].compactMap { $0 })

struct Timing {
    var perToken: [Double] = []
    var restrict: [Double] = []
    var accept: [Double] = []
    func report(_ label: String) {
        let sorted = perToken.sorted()
        let mean = perToken.reduce(0, +) / Double(max(perToken.count, 1))
        let p50 = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        let p95 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 95 / 100)]
        print(String(format: "%@: %d tokens, restrict+accept mean %.3f ms, p50 %.3f ms, p95 %.3f ms, max %.2f ms (restrict mean %.3f, accept mean %.4f), total %.1f ms",
                     label, perToken.count, mean * 1e3, p50 * 1e3, p95 * 1e3, (sorted.last ?? 0) * 1e3,
                     restrict.reduce(0, +) / Double(max(restrict.count, 1)) * 1e3,
                     accept.reduce(0, +) / Double(max(accept.count, 1)) * 1e3, perToken.reduce(0, +) * 1e3))
    }
}

/// Replays `text`'s tokens through a fresh constraint of `grammar`, timing restrict + accept for each.
func replay(_ grammar: Grammar, _ text: String) throws -> Timing {
    var constraint = try grammar.constraint(tokenizer: tokenizer, endTokens: endTokens)
    var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
    var timing = Timing()
    let tokens = tokenizer.encode(text, addSpecial: false, parseSpecial: false) + [endTokens.first ?? 0]
    for token in tokens {
        allowed.withUnsafeMutableBufferPointer { $0.update(repeating: true) }
        let start = now()
        constraint.restrict(&allowed)
        let middle = now()
        guard allowed[Int(token)] else { fatalError("token \(token) refused by the mask") }
        guard constraint.accept(token) else { fatalError("token \(token) refused by accept") }
        let end = now()
        timing.perToken.append(end - start)
        timing.restrict.append(middle - start)
        timing.accept.append(end - middle)
    }
    guard constraint.isFinished else { fatalError("not finished") }
    return timing
}

let trieStart = now()
_ = try Grammar(gbnf: #"root ::= "x""#).constraint(tokenizer: tokenizer, endTokens: endTokens)
print(String(format: "vocabulary trie: built in %.0f ms (once per tokenizer)", (now() - trieStart) * 1000))

let compileStart = now()
let grammar = try Grammar(jsonSchema: schema)
print(String(format: "schema compiled in %.1f ms (%d bytes of GBNF)", (now() - compileStart) * 1000, grammar.source.utf8.count))
for (index, text) in instances.enumerated() {
    let count = tokenizer.encode(text, addSpecial: false, parseSpecial: false).count
    try replay(grammar, text).report("schema, instance \(index + 1) (\(count) tokens), \(index == 0 ? "cold caches" : "after instance 1")")
}
try replay(grammar, instances[0]).report("schema, instance 1 again (warm)")
let fresh = try Grammar(jsonSchema: schema)
try replay(fresh, instances[1]).report("schema, instance 2 on a fresh grammar (cold)")

let jsonGBNF = """
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\\n" [ \\t]{0,20}
"""
let json = try Grammar(gbnf: jsonGBNF)
for (index, text) in instances.enumerated() {
    try replay(json, text.trimmingCharacters(in: .whitespacesAndNewlines)).report("llama.cpp json.gbnf, instance \(index + 1)")
}
