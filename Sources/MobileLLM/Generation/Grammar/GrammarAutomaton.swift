// The matcher: llama.cpp-style parse stacks, interned, with the character transitions between sets of stacks
// cached as they are discovered (a lazily built automaton), plus the partial-UTF-8 state that lets tokens end or
// begin inside a character.
//
// A parse stack is a list of grammar positions: the top is a character-class element still to match, the ones
// below are where to continue when the rule above finishes. Stacks are interned as nodes (position, parent node)
// with node 0 the empty stack, so a stack is one integer and stacks share their tails. A matcher state is the sorted
// set of its stacks' node ids, interned too; it holds the empty stack exactly when the text so far is a whole string
// of the language. Advancing over a character keeps the stacks whose top accepts it, moves them past that element
// and expands rule references and rule ends until every stack again has a character on top (or is empty). The
// result of (state, character) is cached: ASCII in a 128-entry row per state, other characters in a dictionary.
//
// Memory is bounded: past `maximumNodes` nodes or `maximumStates` states everything is dropped and the epoch
// advances; a `GrammarPosition` carries its stacks as positions, so it can be re-interned after a reset.

/// A state of the byte-level matcher as the automaton sees it: an interned state and a partial UTF-8 character.
struct GrammarCursor: Sendable, Equatable {
    /// Interned matcher state (valid in `epoch` only).
    var state: Int32
    /// Partial UTF-8 character: `value | remaining << 24 | length << 28`; 0 when between characters.
    var partial: UInt32
}

/// Every parse stack of a state as grammar positions (bottom first), so that the state survives an automaton reset.
final class GrammarStateSnapshot: Sendable {
    let stacks: [[Int32]]
    /// The text so far is a whole string of the language.
    let canEnd: Bool
    /// The only stack is the empty one: nothing may follow.
    let onlyEnd: Bool

    init(stacks: [[Int32]], canEnd: Bool, onlyEnd: Bool) {
        self.stacks = stacks
        self.canEnd = canEnd
        self.onlyEnd = onlyEnd
    }
}

/// Interned stacks and states of one grammar, their cached transitions, and the token masks computed from them.
/// Not thread-safe by itself: `Grammar` keeps it behind a lock.
struct GrammarAutomaton {
    let program: GrammarProgram

    /// Drop everything beyond this many stack nodes...
    static let maximumNodes = 4_000_000
    /// ...or this many states.
    static let maximumStates = 1_000_000
    /// Drop the cached masks beyond this many bytes.
    static let maximumMaskBytes = 96 << 20

    /// Advances on every reset; cursors of another epoch must be re-interned from their snapshot.
    private(set) var epoch = 0

    // Stack nodes: node 0 is the empty stack.
    private var nodePosition: [Int32] = [-1]
    private var nodeParent: [UInt32] = [0]
    private var nodeIndex: [UInt64: UInt32] = [:]

    // States.
    private var stateStacks: [[UInt32]] = []
    private var stateIndex: [[UInt32]: Int32] = [:]
    private var stateCanEnd: [Bool] = []
    private var stateOnlyEnd: [Bool] = []
    private var asciiRow: [Int32] = []
    private var asciiTable: [Int32] = []
    private var wideTransitions: [UInt64: Int32] = [:]
    /// Per state, the distinct classes on top of its stacks (nil until needed).
    private var topClasses: [[Int32]?] = []
    private struct SignatureKey: Hashable {
        var state: Int32
        var signature: UInt64
    }
    /// Transitions by (state, which top classes contain the character).
    private var signatureTransitions: [SignatureKey: Int32] = [:]
    private var firstClasses: [Int32: ScalarSet] = [:]
    private var snapshots: [Int32: GrammarStateSnapshot] = [:]

    // Masks: per vocabulary trie (by identity) and cursor.
    private var masks: [ObjectIdentifier: [UInt64: TokenMask]] = [:]
    private var maskTries: [ObjectIdentifier: TokenTrie] = [:]
    private var maskBytes = 0

    // Scratch space for expansions and walks.
    private var work: [(position: Int32, parent: UInt32)] = []
    private var visited: Set<UInt64> = []
    private var results: [UInt32] = []
    private var walkStates: [Int32] = []
    private var walkPartials: [UInt32] = []

    /// The state the grammar starts in (state 0 of every epoch).
    let initialState: Int32 = 0

    /// The automaton of `program`; nil when even the start state is past the run-time limits.
    init?(program: GrammarProgram) {
        self.program = program
        guard createInitialState() else { return nil }
    }

    /// Interns the start state as state 0. The compiler bounds its size (the start rule's fan-out), so this only
    /// fails when the start expands to nothing within `maximumExpansionSteps`.
    private mutating func createInitialState() -> Bool {
        results.removeAll(keepingCapacity: true)
        visited.removeAll(keepingCapacity: true)
        for start in program.alternatives[Int(program.root)] where results.count < GrammarLimits.maximumStacksPerState {
            expand(from: start, parent: 0)
        }
        guard !results.isEmpty else { return false }
        _ = internState(sortedUnique(&results))
        return true
    }

    /// Work allowed for one step (expansion items visited).
    static let maximumExpansionSteps = 32_768
    /// Expansion work one mask computation may spend on transitions not cached yet; past it, once some token is
    /// allowed, the walk stops (the mask then allows a subset of the tokens that could come next).
    static let maximumMaskWork = 1 << 20
    /// Expansion items visited so far, over the automaton's life.
    private(set) var expansionWork = 0
    /// Masks cut short by `maximumMaskWork`.
    private(set) var truncatedMasks = 0

    /// Steps whose stacks were cut at `GrammarLimits.maximumStacksPerState` or `maximumExpansionSteps` (grammars so
    /// ambiguous that the stacks multiply with the input). The stacks kept are still valid parses, each of which can
    /// finish, so the matcher never gets stuck; it only forgoes some continuations.
    private(set) var truncatedSteps = 0

    // MARK: nodes and states

    @inline(__always) private mutating func node(_ position: Int32, _ parent: UInt32) -> UInt32 {
        let key = UInt64(UInt32(bitPattern: position)) << 32 | UInt64(parent)
        if let existing = nodeIndex[key] { return existing }
        let id = UInt32(nodePosition.count)
        nodePosition.append(position)
        nodeParent.append(parent)
        nodeIndex[key] = id
        return id
    }

    private func sortedUnique(_ values: inout [UInt32]) -> [UInt32] {
        values.sort()
        var out: [UInt32] = []
        out.reserveCapacity(values.count)
        for value in values where out.last != value { out.append(value) }
        return out
    }

    private mutating func internState(_ stacks: [UInt32]) -> Int32 {
        if let existing = stateIndex[stacks] { return existing }
        let id = Int32(stateStacks.count)
        stateStacks.append(stacks)
        stateIndex[stacks] = id
        let canEnd = stacks.first == 0
        stateCanEnd.append(canEnd)
        stateOnlyEnd.append(canEnd && stacks.count == 1)
        asciiRow.append(-1)
        topClasses.append(nil)
        return id
    }

    /// Expands from `position` with `parent` below: rule references push their continuation (unless it is the end
    /// of the alternative) and enter every alternative; ends of alternatives pop. Collects the stacks that have a
    /// character on top, and the empty stack, into `results`. Stops early (counting a truncated step) when the
    /// results or the work grow past the limits.
    private mutating func expand(from position: Int32, parent: UInt32) {
        let elements = program.elements
        work.removeAll(keepingCapacity: true)
        work.append((position, parent))
        while let (position, parent) = work.popLast() {
            if visited.count > GrammarAutomaton.maximumExpansionSteps || results.count >= GrammarLimits.maximumStacksPerState {
                truncatedSteps += 1
                return
            }
            let key = UInt64(UInt32(bitPattern: position)) << 32 | UInt64(parent)
            guard visited.insert(key).inserted else { continue }
            expansionWork += 1
            let element = elements[Int(position)]
            if element >= 0 {
                results.append(node(position, parent))
            } else if element == GrammarProgram.end {
                if parent == 0 {
                    results.append(0)
                } else {
                    work.append((nodePosition[Int(parent)], nodeParent[Int(parent)]))
                }
            } else {
                let rule = GrammarProgram.referencedRule(element)
                let continuation = position + 1
                let below = elements[Int(continuation)] == GrammarProgram.end ? parent : node(continuation, parent)
                for start in program.alternatives[Int(rule)] { work.append((start, below)) }
            }
        }
    }

    /// The state after `state` reads character `c`; -1 when no stack accepts it.
    @inline(__always) mutating func next(_ state: Int32, _ c: UInt32) -> Int32 {
        if c < 128 {
            let row = asciiRow[Int(state)]
            if row >= 0 {
                let cached = asciiTable[Int(row) + Int(c)]
                if cached != -2 { return cached }
            } else {
                asciiRow[Int(state)] = Int32(asciiTable.count)
                asciiTable.append(contentsOf: repeatElement(-2, count: 128))
            }
            let result = nextBySignature(state, c)
            asciiTable[Int(asciiRow[Int(state)]) + Int(c)] = result
            return result
        }
        let key = UInt64(UInt32(bitPattern: state)) << 21 | UInt64(c)
        if let cached = wideTransitions[key] { return cached }
        let result = nextBySignature(state, c)
        wideTransitions[key] = result
        return result
    }

    /// The next state depends only on which of the state's top classes contain `c`: characters with the same
    /// answers (most of a free-text class) share one computation, and a character in none of them is refused at
    /// once. States with more than 64 distinct top classes are computed per character.
    private mutating func nextBySignature(_ state: Int32, _ c: UInt32) -> Int32 {
        if topClasses[Int(state)] == nil {
            var distinct: [Int32] = []
            for stack in stateStacks[Int(state)] where stack != 0 {
                let element = program.elements[Int(nodePosition[Int(stack)])]
                if !distinct.contains(element) { distinct.append(element) }
                if distinct.count > 64 { break }
            }
            topClasses[Int(state)] = distinct
        }
        guard let classes = topClasses[Int(state)], classes.count <= 64 else { return computeNext(state, c) }
        var signature: UInt64 = 0
        for (bit, element) in classes.enumerated() where program.classes[Int(element)].contains(c) {
            signature |= 1 << UInt64(bit)
        }
        if signature == 0 { return -1 }
        let key = SignatureKey(state: state, signature: signature)
        if let cached = signatureTransitions[key] { return cached }
        let result = computeNext(state, c)
        signatureTransitions[key] = result
        return result
    }

    private mutating func computeNext(_ state: Int32, _ c: UInt32) -> Int32 {
        results.removeAll(keepingCapacity: true)
        visited.removeAll(keepingCapacity: true)
        let elements = program.elements
        for stack in stateStacks[Int(state)] where stack != 0 {
            let position = nodePosition[Int(stack)]
            guard program.classes[Int(elements[Int(position)])].contains(c) else { continue }
            if results.count >= GrammarLimits.maximumStacksPerState {
                truncatedSteps += 1
                break
            }
            expand(from: position + 1, parent: nodeParent[Int(stack)])
        }
        if results.isEmpty { return -1 }
        return internState(sortedUnique(&results))
    }

    /// The union of the classes on top of a state's stacks: the characters it can read next.
    private mutating func firstClass(_ state: Int32) -> ScalarSet {
        if let cached = firstClasses[state] { return cached }
        var ranges: [ClosedRange<UInt32>] = []
        var seen = Set<Int32>()
        for stack in stateStacks[Int(state)] where stack != 0 {
            let element = program.elements[Int(nodePosition[Int(stack)])]
            guard seen.insert(element).inserted else { continue }
            let bounds = program.classes[Int(element)].bounds
            var index = 0
            while index < bounds.count {
                ranges.append(bounds[index]...bounds[index + 1])
                index += 2
            }
        }
        let union = ScalarSet(ranges: ranges, negated: false)
        firstClasses[state] = union
        return union
    }

    // MARK: bytes

    /// The smallest scalar a UTF-8 sequence of `length` bytes may encode (shorter encodings are overlong).
    @inline(__always) private static func minimumScalar(length: UInt32) -> UInt32 {
        length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
    }

    /// Whether some character the state can read next starts with the bytes of `partial`, and is valid UTF-8.
    private mutating func viable(_ state: Int32, _ partial: UInt32) -> Bool {
        let remaining = (partial >> 24) & 0xF, length = partial >> 28
        let shift = 6 * remaining
        var low = (partial & 0xFFFFFF) << shift
        var high = low | ((1 << shift) - 1)
        low = max(low, GrammarAutomaton.minimumScalar(length: length))
        high = min(high, 0x10FFFF)
        guard low <= high else { return false }
        return firstClass(state).intersects(low, high)
    }

    /// The cursor after one byte; state -1 when the byte cannot come next. Bytes outside well-formed UTF-8 (overlong
    /// forms, surrogates, above U+10FFFF, stray continuation bytes) never can.
    @inline(__always) mutating func step(_ cursor: GrammarCursor, _ byte: UInt8) -> GrammarCursor {
        let dead = GrammarCursor(state: -1, partial: 0)
        if cursor.partial == 0 {
            if byte < 0x80 { return GrammarCursor(state: next(cursor.state, UInt32(byte)), partial: 0) }
            let length: UInt32, value: UInt32
            switch byte {
            case 0xC2...0xDF: (length, value) = (2, UInt32(byte & 0x1F))
            case 0xE0...0xEF: (length, value) = (3, UInt32(byte & 0x0F))
            case 0xF0...0xF4: (length, value) = (4, UInt32(byte & 0x07))
            default: return dead
            }
            let partial = value | (length - 1) << 24 | length << 28
            return viable(cursor.state, partial) ? GrammarCursor(state: cursor.state, partial: partial) : dead
        }
        guard byte & 0xC0 == 0x80 else { return dead }
        let value = (cursor.partial & 0x1FFFFF) << 6 | UInt32(byte & 0x3F)
        let remaining = ((cursor.partial >> 24) & 0xF) - 1
        let length = cursor.partial >> 28
        if remaining == 0 {
            guard value >= GrammarAutomaton.minimumScalar(length: length), value <= 0x10FFFF,
                  value < 0xD800 || value > 0xDFFF else { return dead }
            return GrammarCursor(state: next(cursor.state, value), partial: 0)
        }
        let partial = value | remaining << 24 | length << 28
        return viable(cursor.state, partial) ? GrammarCursor(state: cursor.state, partial: partial) : dead
    }

    /// The cursor after `bytes`, or nil when some byte cannot come next.
    mutating func advance(_ cursor: GrammarCursor, over bytes: some Collection<UInt8>) -> GrammarCursor? {
        var current = cursor
        for byte in bytes {
            current = step(current, byte)
            if current.state < 0 { return nil }
        }
        return current
    }

    func canEnd(_ state: Int32) -> Bool { stateCanEnd[Int(state)] }
    func onlyEnd(_ state: Int32) -> Bool { stateOnlyEnd[Int(state)] }
    /// Number of interned states (for tests and diagnostics).
    var stateCountForTesting: Int { stateStacks.count }
    /// Number of parse stacks of a state (for tests and diagnostics).
    func stackCount(_ state: Int32) -> Int { stateStacks[Int(state)].count }

    // MARK: snapshots and resets

    /// The state's stacks as positions, cached per state.
    mutating func snapshot(_ state: Int32) -> GrammarStateSnapshot {
        if let cached = snapshots[state] { return cached }
        var stacks: [[Int32]] = []
        for stack in stateStacks[Int(state)] {
            var positions: [Int32] = []
            var node = stack
            while node != 0 {
                positions.append(nodePosition[Int(node)])
                node = nodeParent[Int(node)]
            }
            stacks.append(positions.reversed())
        }
        let snapshot = GrammarStateSnapshot(stacks: stacks, canEnd: stateCanEnd[Int(state)], onlyEnd: stateOnlyEnd[Int(state)])
        snapshots[state] = snapshot
        return snapshot
    }

    /// The state holding exactly the snapshot's stacks, in the current epoch.
    mutating func intern(_ snapshot: GrammarStateSnapshot) -> Int32 {
        var ids: [UInt32] = []
        for stack in snapshot.stacks {
            var id: UInt32 = 0
            for position in stack { id = node(position, id) }
            ids.append(id)
        }
        let state = internState(sortedUnique(&ids))
        snapshots[state] = snapshot
        return state
    }

    /// Drops everything when the tables have grown past their bounds; call before starting an operation (never in
    /// the middle of one, whose ids would go stale). Returns true when it reset.
    @discardableResult mutating func resetIfLarge() -> Bool {
        if maskBytes > GrammarAutomaton.maximumMaskBytes {
            masks.removeAll()
            maskTries.removeAll()
            maskBytes = 0
        }
        guard nodePosition.count > GrammarAutomaton.maximumNodes || stateStacks.count > GrammarAutomaton.maximumStates else { return false }
        reset()
        return true
    }

    /// Drops every interned stack and state, cached transition and mask, and advances the epoch.
    mutating func reset() {
        epoch += 1
        nodePosition = [-1]
        nodeParent = [0]
        nodeIndex = [:]
        stateStacks = []
        stateIndex = [:]
        stateCanEnd = []
        stateOnlyEnd = []
        asciiRow = []
        asciiTable = []
        wideTransitions = [:]
        topClasses = []
        signatureTransitions = [:]
        firstClasses = [:]
        snapshots = [:]
        masks = [:]
        maskTries = [:]
        maskBytes = 0
        // The start state was built once before, with the same limits.
        _ = createInitialState()
    }

    // MARK: token masks

    /// The tokens of `trie` whose bytes can come next at `cursor` (special and empty tokens never can), cached per
    /// cursor. Walks the trie depth first: a shared prefix is matched once, and a prefix that cannot come next skips
    /// its whole subtree.
    mutating func mask(_ trie: TokenTrie, at cursor: GrammarCursor) -> TokenMask {
        let key = UInt64(UInt32(bitPattern: cursor.state)) << 32 | UInt64(cursor.partial)
        let trieID = ObjectIdentifier(trie)
        if let cached = masks[trieID]?[key] { return cached }
        let mask = computeMask(trie, at: cursor)
        if maskTries[trieID] == nil { maskTries[trieID] = trie }
        masks[trieID, default: [:]][key] = mask
        maskBytes += mask.byteCount
        return mask
    }

    private mutating func computeMask(_ trie: TokenTrie, at cursor: GrammarCursor) -> TokenMask {
        var words = [UInt64](repeating: 0, count: (trie.vocabularySize + 63) / 64)
        var allowed = 0
        let depthCount = trie.maximumDepth + 1
        if walkStates.count < depthCount {
            walkStates = [Int32](repeating: 0, count: depthCount)
            walkPartials = [UInt32](repeating: 0, count: depthCount)
        }
        walkStates[0] = cursor.state
        walkPartials[0] = cursor.partial
        let nodeCount = trie.nodeBytes.count
        let workAtStart = expansionWork
        var index = 0
        while index < nodeCount {
            if allowed > 0, expansionWork - workAtStart > GrammarAutomaton.maximumMaskWork {
                truncatedMasks += 1
                break
            }
            let depth = Int(trie.nodeDepth[index])
            let parent = GrammarCursor(state: walkStates[depth - 1], partial: walkPartials[depth - 1])
            let child = step(parent, trie.nodeBytes[index])
            if child.state < 0 {
                index = Int(trie.nodeNext[index])
                continue
            }
            walkStates[depth] = child.state
            walkPartials[depth] = child.partial
            let first = Int(trie.tokenStart[index]), last = Int(trie.tokenStart[index + 1])
            if first < last {
                for slot in first..<last {
                    let token = Int(trie.tokenIDs[slot])
                    words[token >> 6] |= 1 << UInt64(token & 63)
                }
                allowed += last - first
            }
            index += 1
        }
        return TokenMask(words: words, allowedCount: allowed, vocabularySize: trie.vocabularySize)
    }
}
