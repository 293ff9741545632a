// The public face of the grammar engine: `Grammar` (compiled once, shared) and `GrammarConstraint` (one matcher
// position per sequence). See README.md in this folder for the design.

/// A compiled grammar: GBNF as llama.cpp spells it, or the grammar a JSON Schema compiles to. Immutable and shareable
/// between sequences and threads; the per-tokenizer token masks it caches are shared too.
public final class Grammar: Sendable {
    /// The GBNF text this grammar was compiled from (for a JSON Schema, the GBNF it compiled to).
    public let source: String

    /// The checked rules the matcher runs.
    let program: GrammarProgram
    /// Interned matcher states, their transitions and token masks, shared by every constraint of this grammar.
    let automaton: Locked<GrammarAutomaton>

    /// Compiles GBNF text whose start rule is `root`. Throws `MobileLLMError.grammar` with the rule, line and column
    /// of the fault: syntax errors, undefined rules, left recursion, a language with no string, excessive sizes.
    public convenience init(gbnf: String, root: String = "root") throws {
        try self.init(source: gbnf, program: Grammar.compile(gbnf, root: root))
    }

    /// Compiles a JSON Schema (JSON text) of the supported subset. Throws `MobileLLMError.jsonSchema` naming the JSON
    /// pointer of an unsupported or malformed part.
    public convenience init(jsonSchema: String) throws {
        let translation = try JSONSchemaTranslator.translate(jsonSchema)
        let program: GrammarProgram
        do {
            program = try Grammar.compile(translation.gbnf, root: "root")
        } catch let MobileLLMError.grammar(rule, _, _, message) {
            // Problems only the grammar compiler sees (a recursive $ref that never ends, left recursion through
            // $ref, sizes) are reported at the schema location the rule came from.
            throw MobileLLMError.jsonSchema(pointer: translation.pointers[rule] ?? "", message: message)
        }
        try self.init(source: translation.gbnf, program: program)
    }

    private init(source: String, program: GrammarProgram) throws {
        guard let automaton = GrammarAutomaton(program: program) else {
            let name = program.ruleNames[Int(program.root)]
            let (line, column) = GrammarText.lineAndColumn(of: program.ruleOffsets[Int(program.root)], in: source)
            throw MobileLLMError.grammar(rule: name, line: line, column: column,
                                         message: "the grammar is too ambiguous: its start state exceeds the matcher's limits")
        }
        self.source = source
        self.program = program
        self.automaton = Locked(automaton)
    }

    /// Compiles GBNF, turning offsets into lines and columns.
    static func compile(_ gbnf: String, root: String) throws -> GrammarProgram {
        do {
            return try GrammarProgram.compile(gbnf, root: root)
        } catch {
            let (line, column) = GrammarText.lineAndColumn(of: error.offset, in: gbnf)
            throw MobileLLMError.grammar(rule: error.rule, line: line, column: column, message: error.message)
        }
    }

    /// A fresh matcher at the grammar's start, for `tokenizer`'s vocabulary. `endTokens` (the stop ids in force) are
    /// allowed exactly when the grammar may end at that point. Special tokens other than `endTokens` are never allowed.
    public func constraint(tokenizer: Tokenizer, endTokens: Set<Int32>) throws -> GrammarConstraint {
        let trie = TokenTrie.shared(for: tokenizer)
        let (epoch, snapshot) = automaton.withLock { automaton in
            automaton.resetIfLarge()
            return (automaton.epoch, automaton.snapshot(automaton.initialState))
        }
        return GrammarConstraint(grammar: self, trie: trie, endTokens: endTokens, epoch: epoch, snapshot: snapshot)
    }

    /// Whether `text` is a whole string of the grammar's language (added beyond the generation contract: checks a
    /// finished output, and lets tests compare the matcher with other implementations).
    public func matches(_ text: String) -> Bool {
        matches(bytes: Array(text.utf8))
    }

    /// Whether `bytes` (UTF-8) are a whole string of the grammar's language; false for ill-formed UTF-8.
    public func matches(bytes: [UInt8]) -> Bool {
        automaton.withLock { automaton in
            automaton.resetIfLarge()
            let start = GrammarCursor(state: automaton.initialState, partial: 0)
            guard let end = automaton.advance(start, over: bytes), end.partial == 0 else { return false }
            return automaton.canEnd(end.state)
        }
    }
}

/// Where one sequence stands in a grammar: which tokens may come next. A value type: copying it (a forked sample)
/// gives an independent matcher.
public struct GrammarConstraint: Sendable {
    let grammar: Grammar
    let trie: TokenTrie
    let endTokens: Set<Int32>
    private let endTokenList: [Int32]
    /// The matcher position, valid in automaton epoch `epoch`; `snapshot` holds its stacks for any other epoch.
    private var cursor: GrammarCursor
    private var epoch: Int
    private var snapshot: GrammarStateSnapshot
    /// An end token has been accepted.
    private var ended = false

    init(grammar: Grammar, trie: TokenTrie, endTokens: Set<Int32>, epoch: Int, snapshot: GrammarStateSnapshot) {
        self.grammar = grammar
        self.trie = trie
        self.endTokens = endTokens
        endTokenList = endTokens.sorted()
        cursor = GrammarCursor(state: 0, partial: 0)
        self.epoch = epoch
        self.snapshot = snapshot
    }

    /// The cursor in the automaton's current epoch.
    private func current(in automaton: inout GrammarAutomaton) -> GrammarCursor {
        if automaton.epoch == epoch { return cursor }
        return GrammarCursor(state: automaton.intern(snapshot), partial: cursor.partial)
    }

    /// Sets `allowed[t] = false` for every token `t` that may not come next (the array has one entry per vocabulary
    /// id and arrives all true). Fast: masks are cached per matcher state. Entries past the tokenizer's vocabulary
    /// are cleared; after an end token has been accepted only end tokens remain allowed.
    public func restrict(_ allowed: inout [Bool]) {
        let endAllowed = canEnd
        let kept = endTokenList.map { $0 >= 0 && Int($0) < allowed.count ? allowed[Int($0)] : false }
        if ended || isFinished {
            allowed.withUnsafeMutableBufferPointer { $0.update(repeating: false) }
        } else {
            let mask = grammar.automaton.withLock { automaton -> TokenMask in
                automaton.resetIfLarge()
                return automaton.mask(trie, at: current(in: &automaton))
            }
            mask.apply(to: &allowed)
        }
        for (slot, token) in endTokenList.enumerated() where token >= 0 && Int(token) < allowed.count {
            allowed[Int(token)] = kept[slot] && endAllowed
        }
    }

    /// Advances over `token`. Returns false (and stays where it was) when the token may not come next. An end token
    /// is taken exactly when `canEnd`; after one, only end tokens are.
    public mutating func accept(_ token: Int32) -> Bool {
        if endTokens.contains(token) {
            guard canEnd else { return false }
            ended = true
            return true
        }
        if ended { return false }
        guard token >= 0, Int(token) < trie.vocabularySize, !trie.special[Int(token)] else { return false }
        let bytes = trie.tokenBytes(token)
        guard !bytes.isEmpty else { return false }
        let advanced = grammar.automaton.withLock { automaton -> (GrammarCursor, Int, GrammarStateSnapshot)? in
            automaton.resetIfLarge()
            guard let next = automaton.advance(current(in: &automaton), over: bytes) else { return nil }
            return (next, automaton.epoch, automaton.snapshot(next.state))
        }
        guard let (next, nextEpoch, nextSnapshot) = advanced else { return false }
        cursor = next
        epoch = nextEpoch
        snapshot = nextSnapshot
        return true
    }

    /// True when the grammar has matched a whole string and nothing more may follow: generation ends (`.grammar`).
    /// Also true once an end token has been accepted.
    public var isFinished: Bool { ended || (cursor.partial == 0 && snapshot.onlyEnd) }

    /// True when the text so far is a whole string of the language (an end token is allowed now).
    public var canEnd: Bool { cursor.partial == 0 && snapshot.canEnd }
}
