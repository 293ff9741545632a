// CONTRACT STUB (replaced by the grammar engine): the API the generation loop codes against. Every signature here is
// what the engine provides; the bodies below only throw so that the package builds while the engine is written.

/// A compiled grammar: GBNF as llama.cpp spells it, or the grammar a JSON Schema compiles to. Immutable and shareable
/// between sequences and threads; the per-tokenizer token masks it caches are shared too.
public final class Grammar: Sendable {
    /// The GBNF text this grammar was compiled from (for a JSON Schema, the GBNF it compiled to).
    public let source: String

    /// Compiles GBNF text whose start rule is `root`. Throws `MobileLLMError.grammar` with the rule, line and column
    /// of the fault: syntax errors, undefined rules, left recursion, a language with no string, excessive sizes.
    public init(gbnf: String, root: String = "root") throws {
        _ = root
        source = gbnf
        throw MobileLLMError.unsupported(path: "grammar", feature: "grammar engine not built yet")
    }

    /// Compiles a JSON Schema (JSON text) of the supported subset. Throws `MobileLLMError.jsonSchema` naming the JSON
    /// pointer of an unsupported or malformed part.
    public convenience init(jsonSchema: String) throws {
        try self.init(gbnf: jsonSchema)
    }

    /// A fresh matcher at the grammar's start, for `tokenizer`'s vocabulary. `endTokens` (the stop ids in force) are
    /// allowed exactly when the grammar may end at that point. Special tokens other than `endTokens` are never allowed.
    public func constraint(tokenizer: Tokenizer, endTokens: Set<Int32>) throws -> GrammarConstraint {
        throw MobileLLMError.unsupported(path: "grammar", feature: "grammar engine not built yet")
    }
}

/// Where one sequence stands in a grammar: which tokens may come next. A value type: copying it (a forked sample)
/// gives an independent matcher.
public struct GrammarConstraint: Sendable {
    /// Sets `allowed[t] = false` for every token `t` that may not come next (the array has one entry per vocabulary
    /// id and arrives all true). Fast: masks are cached per matcher state.
    public func restrict(_ allowed: inout [Bool]) {}

    /// Advances over `token`. Returns false (and stays where it was) when the token may not come next.
    public mutating func accept(_ token: Int32) -> Bool { false }

    /// True when the grammar has matched a whole string and nothing more may follow: generation ends (`.grammar`).
    public var isFinished: Bool { false }

    /// True when the text so far is a whole string of the language (an end token is allowed now).
    public var canEnd: Bool { false }
}
