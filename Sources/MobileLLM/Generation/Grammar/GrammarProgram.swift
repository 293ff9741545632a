// The compiled form of a grammar and the compiler that builds and checks it.
//
// Every rule becomes a list of alternatives laid out in one flat array of elements (llama.cpp's layout): a
// character-class index (>= 0), a rule reference (<= -2, rule r is -(r + 2)) or the end of an alternative (-1).
// Groups with more than one alternative, and repetitions, become rules of their own, as llama.cpp rewrites them:
//   x*      -> S where S ::= x S | ""
//   x+      -> x S
//   x?      -> R where R ::= x | ""
//   x{m,n}  -> x (m times) R(n-m) where R(k) ::= x R(k-1) | "" and R(1) ::= x | ""
//   x{m,}   -> x (m times) S
// so stacks do not grow with repetition (a reference at the end of an alternative is never pushed).
//
// The checks, in order: undefined rules, the start rule, left recursion (direct, indirect, through prefixes that may
// be empty), rules that match no finite string, and the fan-out of every position (how many parse stacks one step
// may produce), which keeps exponentially ambiguous grammars out.

/// A set of Unicode scalar values: sorted, disjoint, non-adjacent inclusive ranges, surrogates excluded.
struct ScalarSet: Sendable, Hashable {
    /// Range bounds, `[low0, high0, low1, high1, ...]`.
    let bounds: [UInt32]
    /// Membership of the ASCII characters, bit c of `ascii.0` (c < 64) or `ascii.1` (c - 64).
    let asciiLow: UInt64
    let asciiHigh: UInt64

    /// The class of `ranges` (any order, overlapping allowed), or its complement when `negated`. Surrogates are never
    /// members: no UTF-8 text contains them.
    init(ranges: [ClosedRange<UInt32>], negated: Bool) {
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<UInt32>] = []
        for range in sorted {
            if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        if negated {
            var complement: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for range in merged {
                if range.lowerBound > next { complement.append(next...(range.lowerBound - 1)) }
                next = range.upperBound &+ 1
                if range.upperBound >= 0x10FFFF { next = 0x110000 }
            }
            if next <= 0x10FFFF { complement.append(next...0x10FFFF) }
            merged = complement
        }
        var bounds: [UInt32] = []
        for range in merged {
            // Cut out the surrogates.
            let low = range.lowerBound, high = min(range.upperBound, 0x10FFFF)
            guard low <= high else { continue }
            if high < 0xD800 || low > 0xDFFF {
                bounds += [low, high]
            } else {
                if low < 0xD800 { bounds += [low, 0xD7FF] }
                if high > 0xDFFF { bounds += [0xE000, high] }
            }
        }
        self.bounds = bounds
        var low: UInt64 = 0, high: UInt64 = 0
        var index = 0
        while index < bounds.count, bounds[index] < 128 {
            for c in bounds[index]...min(bounds[index + 1], 127) {
                if c < 64 { low |= 1 << UInt64(c) } else { high |= 1 << UInt64(c - 64) }
            }
            index += 2
        }
        asciiLow = low
        asciiHigh = high
    }

    /// Every Unicode scalar value (`.`).
    static let any = ScalarSet(ranges: [0...0x10FFFF], negated: false)

    var isEmpty: Bool { bounds.isEmpty }

    @inline(__always) func contains(_ c: UInt32) -> Bool {
        if c < 64 { return asciiLow >> UInt64(c) & 1 != 0 }
        if c < 128 { return asciiHigh >> UInt64(c - 64) & 1 != 0 }
        // Binary search for the last range starting at or below c.
        var low = 0, high = bounds.count / 2
        while low < high {
            let middle = (low + high) / 2
            if bounds[2 * middle] <= c { low = middle + 1 } else { high = middle }
        }
        return low > 0 && c <= bounds[2 * (low - 1) + 1]
    }

    /// Whether any member lies in `low...high`.
    func intersects(_ low: UInt32, _ high: UInt32) -> Bool {
        var index = 0
        while index < bounds.count {
            if bounds[index] > high { return false }
            if bounds[index + 1] >= low { return true }
            index += 2
        }
        return false
    }
}

/// A compiled, checked grammar: what the matcher runs.
struct GrammarProgram: Sendable {
    /// Elements of every alternative of every rule, each alternative ended by `GrammarProgram.end`.
    let elements: [Int32]
    /// The text offset each element came from (for messages).
    let elementOffsets: [Int32]
    /// The start position of each alternative of each rule.
    let alternatives: [[Int32]]
    /// The character classes the elements index.
    let classes: [ScalarSet]
    /// For each rule, the user's rule it belongs to (groups and repetitions belong to the rule they are written in).
    let ruleNames: [String]
    /// The start rule.
    let root: Int32

    static let end: Int32 = -1
    @inline(__always) static func reference(_ rule: Int32) -> Int32 { -(rule + 2) }
    @inline(__always) static func referencedRule(_ element: Int32) -> Int32 { -element - 2 }

    /// Compiles `source`, whose start rule is `root`.
    static func compile(_ source: String, root: String) throws(GrammarError) -> GrammarProgram {
        let definitions = try GBNFParser.parse(source)
        var lowering = GrammarLowering(definitions: definitions)
        guard let rootIndex = lowering.nameIndex[root] else {
            throw GrammarError(rule: root, offset: 0, message: definitions.isEmpty
                ? "the grammar has no rules; it needs a start rule '\(root)'"
                : "there is no rule named '\(root)' (the start rule)")
        }
        try lowering.lowerAll()
        var program = lowering.flatten(root: rootIndex)
        try program.check()
        return program
    }

    fileprivate init(elements: [Int32], elementOffsets: [Int32], alternatives: [[Int32]], classes: [ScalarSet],
                     ruleNames: [String], ruleKinds: [GrammarLowering.RuleKind], ruleOffsets: [Int], root: Int32) {
        self.elements = elements
        self.elementOffsets = elementOffsets
        self.alternatives = alternatives
        self.classes = classes
        self.ruleNames = ruleNames
        self.ruleKinds = ruleKinds
        self.ruleOffsets = ruleOffsets
        self.root = root
    }

    /// What made each rule (for messages).
    fileprivate let ruleKinds: [GrammarLowering.RuleKind]
    /// Where each rule (or the group or repetition it came from) starts in the text.
    let ruleOffsets: [Int]
}

// MARK: lowering

/// Turns rule definitions into rules of flat elements; groups and repetitions become rules of their own.
private struct GrammarLowering {
    enum RuleKind: Sendable { case named, group, repetition(symbol: String) }

    let definitions: [GrammarRuleDefinition]
    var nameIndex: [String: Int32] = [:]
    /// Per rule: its alternatives, each a sequence of elements (without the end marker) and their offsets.
    var rules: [[(elements: [Int32], offsets: [Int32])]] = []
    var names: [String] = []
    var kinds: [RuleKind] = []
    var offsets: [Int] = []
    var classes: [ScalarSet] = []
    var classIndex: [ScalarSet: Int32] = [:]
    /// Classes of one character (literals), by the character: most elements are these. ASCII in an array.
    var singleIndex: [UInt32: Int32] = [:]
    var asciiIndex = [Int32](repeating: -1, count: 128)
    var elementCount = 0

    init(definitions: [GrammarRuleDefinition]) {
        self.definitions = definitions
        for definition in definitions where nameIndex[definition.name] == nil {
            nameIndex[definition.name] = Int32(rules.count)
            rules.append([])
            names.append(definition.name)
            kinds.append(.named)
            offsets.append(definition.offset)
        }
    }

    mutating func lowerAll() throws(GrammarError) {
        for definition in definitions {
            guard let index = nameIndex[definition.name] else { continue }
            var lowered: [(elements: [Int32], offsets: [Int32])] = []
            for alternative in definition.alternatives {
                lowered.append(try lower(sequence: alternative, owner: definition.name))
            }
            try count(lowered, owner: definition.name, offset: definition.offset)
            rules[Int(index)] = lowered
        }
    }

    /// Adds the size of new alternatives to the running total and enforces the limits.
    mutating func count(_ alternatives: [(elements: [Int32], offsets: [Int32])], owner: String, offset: Int) throws(GrammarError) {
        for alternative in alternatives { elementCount += alternative.elements.count + 1 }
        if elementCount > GrammarLimits.maximumElements {
            throw GrammarError(rule: owner, offset: offset, message: "the grammar expands to more than \(GrammarLimits.maximumElements) elements (repetitions copy their item)")
        }
    }

    mutating func newRule(owner: String, kind: RuleKind, offset: Int) throws(GrammarError) -> Int32 {
        guard rules.count < GrammarLimits.maximumRules else {
            throw GrammarError(rule: owner, offset: offset, message: "the grammar needs more than \(GrammarLimits.maximumRules) rules once groups and repetitions are expanded")
        }
        rules.append([])
        names.append(owner)
        kinds.append(kind)
        offsets.append(offset)
        return Int32(rules.count - 1)
    }

    mutating func classElement(_ characterClass: ScalarSet) -> Int32 {
        if let index = classIndex[characterClass] { return index }
        let index = Int32(classes.count)
        classes.append(characterClass)
        classIndex[characterClass] = index
        return index
    }

    mutating func lower(sequence: [GrammarItem], owner: String) throws(GrammarError) -> (elements: [Int32], offsets: [Int32]) {
        var elements: [Int32] = [], offsets: [Int32] = []
        for item in sequence {
            let part = try lower(item: item, owner: owner)
            elements += part.elements
            offsets += part.offsets
            if elements.count > GrammarLimits.maximumElements {
                throw GrammarError(rule: owner, offset: item.offset, message: "the grammar expands to more than \(GrammarLimits.maximumElements) elements (repetitions copy their item)")
            }
        }
        return (elements, offsets)
    }

    mutating func lower(item: GrammarItem, owner: String) throws(GrammarError) -> (elements: [Int32], offsets: [Int32]) {
        let offset = Int32(clamping: item.offset)
        switch item.kind {
        case let .literal(scalars):
            var elements: [Int32] = []
            elements.reserveCapacity(scalars.count)
            for scalar in scalars {
                if scalar >= 0xD800, scalar <= 0xDFFF {
                    throw GrammarError(rule: owner, offset: item.offset, message: "the literal holds a surrogate code point (U+\(String(scalar, radix: 16, uppercase: true))), which no UTF-8 text contains")
                }
                if scalar < 128, asciiIndex[Int(scalar)] >= 0 {
                    elements.append(asciiIndex[Int(scalar)])
                } else if let index = singleIndex[scalar] {
                    elements.append(index)
                } else {
                    let index = classElement(ScalarSet(ranges: [scalar...scalar], negated: false))
                    singleIndex[scalar] = index
                    if scalar < 128 { asciiIndex[Int(scalar)] = index }
                    elements.append(index)
                }
            }
            return (elements, Array(repeating: offset, count: elements.count))
        case let .characterClass(ranges, negated):
            return ([classElement(ScalarSet(ranges: ranges, negated: negated))], [offset])
        case .anyCharacter:
            return ([classElement(.any)], [offset])
        case let .reference(name):
            guard let index = nameIndex[name] else {
                throw GrammarError(rule: owner, offset: item.offset, message: "undefined rule '\(name)'")
            }
            return ([GrammarProgram.reference(index)], [offset])
        case let .group(alternatives):
            if alternatives.count == 1 { return try lower(sequence: alternatives[0], owner: owner) }
            let rule = try newRule(owner: owner, kind: .group, offset: item.offset)
            var lowered: [(elements: [Int32], offsets: [Int32])] = []
            for alternative in alternatives { lowered.append(try lower(sequence: alternative, owner: owner)) }
            try count(lowered, owner: owner, offset: item.offset)
            rules[Int(rule)] = lowered
            return ([GrammarProgram.reference(rule)], [offset])
        case let .repetition(inner, minimum, maximum):
            let symbol: String
            switch (minimum, maximum) {
            case (0, nil): symbol = "*"
            case (1, nil): symbol = "+"
            case (0, 1): symbol = "?"
            default: symbol = maximum.map { $0 == minimum ? "{\(minimum)}" : "{\(minimum),\($0)}" } ?? "{\(minimum),}"
            }
            var unit = try lower(item: inner, owner: owner)
            if unit.elements.isEmpty { return ([], []) }
            if unit.elements.count > 1 {
                let rule = try newRule(owner: owner, kind: .group, offset: item.offset)
                try count([unit], owner: owner, offset: item.offset)
                rules[Int(rule)] = [unit]
                unit = ([GrammarProgram.reference(rule)], [offset])
            }
            var elements: [Int32] = [], offsets: [Int32] = []
            let copies = maximum == 0 ? 0 : minimum
            elements.reserveCapacity(copies + 1)
            for _ in 0..<copies {
                elements += unit.elements
                offsets += unit.offsets
            }
            if let maximum {
                var previous: Int32? = nil
                for _ in 0..<(maximum - minimum) {
                    let rule = try newRule(owner: owner, kind: .repetition(symbol: symbol), offset: item.offset)
                    var first = unit
                    if let previous {
                        first.elements.append(GrammarProgram.reference(previous))
                        first.offsets.append(offset)
                    }
                    let lowered = [first, (elements: [Int32](), offsets: [Int32]())]
                    try count(lowered, owner: owner, offset: item.offset)
                    rules[Int(rule)] = lowered
                    previous = rule
                }
                if let previous {
                    elements.append(GrammarProgram.reference(previous))
                    offsets.append(offset)
                }
            } else {
                let rule = try newRule(owner: owner, kind: .repetition(symbol: symbol), offset: item.offset)
                let lowered = [(elements: unit.elements + [GrammarProgram.reference(rule)], offsets: unit.offsets + [offset]),
                               (elements: [Int32](), offsets: [Int32]())]
                try count(lowered, owner: owner, offset: item.offset)
                rules[Int(rule)] = lowered
                elements.append(GrammarProgram.reference(rule))
                offsets.append(offset)
            }
            return (elements, offsets)
        }
    }

    /// Lays every alternative out in one array.
    func flatten(root: Int32) -> GrammarProgram {
        var elements: [Int32] = [], elementOffsets: [Int32] = []
        elements.reserveCapacity(elementCount)
        elementOffsets.reserveCapacity(elementCount)
        var alternatives: [[Int32]] = []
        alternatives.reserveCapacity(rules.count)
        for (index, rule) in rules.enumerated() {
            var starts: [Int32] = []
            for alternative in rule {
                starts.append(Int32(elements.count))
                elements += alternative.elements
                elementOffsets += alternative.offsets
                elements.append(GrammarProgram.end)
                elementOffsets.append(Int32(clamping: offsets[index]))
            }
            alternatives.append(starts)
        }
        return GrammarProgram(elements: elements, elementOffsets: elementOffsets, alternatives: alternatives, classes: classes,
                              ruleNames: names, ruleKinds: kinds, ruleOffsets: offsets, root: root)
    }
}

// MARK: checks

extension GrammarProgram {
    /// Left recursion, empty languages and fan-out; drops alternatives that can never complete.
    fileprivate mutating func check() throws(GrammarError) {
        let nullable = fixpoint(elementHolds: { _, _ in false })
        try checkLeftRecursion(nullable: nullable)
        let productive = fixpoint(elementHolds: { program, element in !program.classes[Int(element)].isEmpty })
        try checkProductive(productive)
        prune(productive)
        try checkFanOut()
    }

    /// The least fixpoint of "some alternative has only elements that hold": a rule holds when one of its
    /// alternatives has every element holding, a reference holding when its rule does and a character class per
    /// `elementHolds`. With `elementHolds` false it computes nullable rules, with "class not empty" productive ones.
    /// Linear time: each alternative counts its elements that do not hold yet.
    private func fixpoint(elementHolds: (GrammarProgram, Int32) -> Bool) -> [Bool] {
        let ruleCount = alternatives.count
        var holds = [Bool](repeating: false, count: ruleCount)
        // For each alternative: its rule and how many of its references still wait; terminals that fail block it.
        var waiting: [Int32] = []
        var alternativeRule: [Int32] = []
        // Reverse index: rule -> alternatives referring to it (one entry per occurrence).
        var referrers = [[Int32]](repeating: [], count: ruleCount)
        var ready: [Int32] = []
        for rule in 0..<ruleCount {
            for start in alternatives[rule] {
                let alternative = Int32(waiting.count)
                var count: Int32 = 0
                var blocked = false
                var position = Int(start)
                while elements[position] != GrammarProgram.end {
                    let element = elements[position]
                    if element >= 0 {
                        if !elementHolds(self, element) { blocked = true }
                    } else {
                        count += 1
                        referrers[Int(GrammarProgram.referencedRule(element))].append(alternative)
                    }
                    position += 1
                }
                waiting.append(blocked ? Int32.max : count)
                alternativeRule.append(Int32(rule))
                if !blocked, count == 0 { ready.append(alternative) }
            }
        }
        while let alternative = ready.popLast() {
            let rule = Int(alternativeRule[Int(alternative)])
            if holds[rule] { continue }
            holds[rule] = true
            for referrer in referrers[rule] {
                guard waiting[Int(referrer)] != Int32.max else { continue }
                waiting[Int(referrer)] -= 1
                if waiting[Int(referrer)] == 0 { ready.append(referrer) }
            }
        }
        return holds
    }

    /// The rules a rule can begin with: references reached through elements that may be empty. Each edge carries the
    /// position of the reference.
    private func leftEdges(nullable: [Bool]) -> [[(rule: Int32, position: Int32)]] {
        var edges = [[(rule: Int32, position: Int32)]](repeating: [], count: alternatives.count)
        for rule in 0..<alternatives.count {
            for start in alternatives[rule] {
                var position = Int(start)
                while elements[position] < GrammarProgram.end {
                    let target = GrammarProgram.referencedRule(elements[position])
                    edges[rule].append((target, Int32(position)))
                    if !nullable[Int(target)] { break }
                    position += 1
                }
            }
        }
        return edges
    }

    private func checkLeftRecursion(nullable: [Bool]) throws(GrammarError) {
        let edges = leftEdges(nullable: nullable)
        let ruleCount = alternatives.count
        // Iterative depth-first search; 0 unvisited, 1 on the stack, 2 done.
        var color = [UInt8](repeating: 0, count: ruleCount)
        var stack: [(rule: Int32, next: Int)] = []
        for start in 0..<ruleCount where color[start] == 0 {
            stack.append((Int32(start), 0))
            color[start] = 1
            while let top = stack.last {
                let rule = Int(top.rule)
                if top.next < edges[rule].count {
                    stack[stack.count - 1].next += 1
                    let edge = edges[rule][top.next]
                    let target = Int(edge.rule)
                    if color[target] == 1 {
                        // A cycle: the stack from `target` up to `rule`, closed by this edge.
                        let from = stack.firstIndex { $0.rule == edge.rule } ?? 0
                        let cycle = stack[from...].map { Int($0.rule) }
                        throw leftRecursionError(cycle: cycle, closingPosition: Int(edge.position), edges: edges)
                    }
                    if color[target] == 0 {
                        color[target] = 1
                        stack.append((edge.rule, 0))
                    }
                } else {
                    color[rule] = 2
                    stack.removeLast()
                }
            }
        }
    }

    private func leftRecursionError(cycle: [Int], closingPosition: Int, edges: [[(rule: Int32, position: Int32)]]) -> GrammarError {
        // A repetition of something that may be empty shows up as a cycle through the repetition's own rule.
        for rule in cycle {
            if case let .repetition(symbol) = ruleKinds[rule] {
                return GrammarError(rule: ruleNames[rule], offset: ruleOffsets[rule],
                                    message: "'\(symbol)' repeats an item that can match the empty string, which is left recursion; make the repeated item non-empty")
            }
        }
        // Name the chain of user rules, starting from a named rule when there is one.
        let startIndex = cycle.firstIndex { if case .named = ruleKinds[$0] { return true } else { return false } } ?? 0
        let rotated = Array(cycle[startIndex...] + cycle[..<startIndex])
        var chain: [String] = []
        for rule in rotated + [rotated[0]] where chain.last != ruleNames[rule] || chain.count == 0 {
            chain.append(ruleNames[rule])
        }
        if chain.count == 1 { chain.append(chain[0]) }
        // The reference that starts the cycle in the first rule.
        let first = rotated[0]
        let second = rotated.count > 1 ? rotated[1] : rotated[0]
        let position = edges[first].first { Int($0.rule) == second }.map { Int($0.position) } ?? closingPosition
        let description = chain.count == 2 && chain[0] == chain[1]
            ? "rule '\(chain[0])' can begin with itself"
            : "rule '\(chain[0])' can begin with " + chain.dropFirst().map { "'\($0)'" }.joined(separator: ", which can begin with ")
        return GrammarError(rule: ruleNames[first], offset: Int(elementOffsets[position]),
                            message: "left recursion: \(description) (possibly after parts that match the empty string); rewrite it with repetition")
    }

    /// Every rule reachable from the start must match some finite string.
    private func checkProductive(_ productive: [Bool]) throws(GrammarError) {
        if !productive[Int(root)] {
            throw GrammarError(rule: ruleNames[Int(root)], offset: ruleOffsets[Int(root)],
                               message: "the grammar matches no string: rule '\(ruleNames[Int(root)])' never finishes (every alternative needs a rule that never finishes, or an empty character class)")
        }
        var seen = [Bool](repeating: false, count: alternatives.count)
        seen[Int(root)] = true
        var work = [root]
        while let rule = work.popLast() {
            for start in alternatives[Int(rule)] {
                var position = Int(start)
                while elements[position] != GrammarProgram.end {
                    let element = elements[position]
                    if element < GrammarProgram.end {
                        let target = GrammarProgram.referencedRule(element)
                        if !productive[Int(target)] {
                            let kind: String
                            switch ruleKinds[Int(target)] {
                            case .named: kind = "rule '\(ruleNames[Int(target)])'"
                            case .group: kind = "this group"
                            case .repetition: kind = "this repetition"
                            }
                            throw GrammarError(rule: ruleNames[Int(rule)], offset: Int(elementOffsets[position]),
                                               message: "\(kind) matches no finite string (it never finishes)")
                        }
                        if !seen[Int(target)] {
                            seen[Int(target)] = true
                            work.append(target)
                        }
                    }
                    position += 1
                }
            }
        }
    }

    /// Removes the alternatives that cannot complete (an empty class, or a rule that never finishes), so that every
    /// parse stack the matcher holds can still reach the end.
    private mutating func prune(_ productive: [Bool]) {
        var pruned = alternatives
        for rule in 0..<alternatives.count {
            pruned[rule] = alternatives[rule].filter { start in
                var position = Int(start)
                while elements[position] != GrammarProgram.end {
                    let element = elements[position]
                    if element >= 0 ? classes[Int(element)].isEmpty : !productive[Int(GrammarProgram.referencedRule(element))] {
                        return false
                    }
                    position += 1
                }
                return true
            }
        }
        self = GrammarProgram(elements: elements, elementOffsets: elementOffsets, alternatives: pruned, classes: classes,
                              ruleNames: ruleNames, ruleKinds: ruleKinds, ruleOffsets: ruleOffsets, root: root)
    }

    /// For every position: how many parse stacks (ending at a character, or at the end of the enclosing rule) one
    /// expansion from there can produce. Counts saturate at the limit; exceeding it is an error.
    private func checkFanOut() throws(GrammarError) {
        let limit = UInt64(GrammarLimits.maximumFanOut)
        let count = elements.count
        // Per position: (stacks ending at a character, stacks reaching the rule's end); UInt64.max = not computed.
        var atCharacter = [UInt64](repeating: .max, count: count)
        var atEnd = [UInt64](repeating: 0, count: count)
        // Per rule: the sums over its alternatives, computed once.
        var ruleCharacter = [UInt64](repeating: .max, count: alternatives.count)
        var ruleEnd = [UInt64](repeating: 0, count: alternatives.count)
        @inline(__always) func cap(_ value: UInt64) -> UInt64 { min(value, limit + 1) }

        var stack: [Int32] = []
        for start in 0..<count where atCharacter[start] == .max {
            stack.append(Int32(start))
            while let top = stack.last {
                let position = Int(top)
                if atCharacter[position] != .max { stack.removeLast(); continue }
                let element = elements[position]
                if element == GrammarProgram.end {
                    atCharacter[position] = 0; atEnd[position] = 1
                    stack.removeLast()
                    continue
                }
                if element >= 0 {
                    atCharacter[position] = 1; atEnd[position] = 0
                    stack.removeLast()
                    continue
                }
                let rule = Int(GrammarProgram.referencedRule(element))
                if ruleCharacter[rule] == .max {
                    var pending = false
                    for alternative in alternatives[rule] where atCharacter[Int(alternative)] == .max {
                        stack.append(alternative)
                        pending = true
                    }
                    if pending { continue }
                    var character: UInt64 = 0, end: UInt64 = 0
                    for alternative in alternatives[rule] {
                        character = cap(character + atCharacter[Int(alternative)])
                        end = cap(end + atEnd[Int(alternative)])
                    }
                    ruleCharacter[rule] = character
                    ruleEnd[rule] = end
                }
                if ruleEnd[rule] > 0, atCharacter[position + 1] == .max {
                    stack.append(Int32(position + 1))
                    continue
                }
                let nextCharacter = ruleEnd[rule] > 0 ? atCharacter[position + 1] : 0
                let nextEnd = ruleEnd[rule] > 0 ? atEnd[position + 1] : 0
                atCharacter[position] = cap(ruleCharacter[rule] + cap(ruleEnd[rule] * nextCharacter))
                atEnd[position] = cap(ruleEnd[rule] * nextEnd)
                stack.removeLast()
                if atCharacter[position] + atEnd[position] > limit {
                    throw GrammarError(rule: ruleNames[Int(ruleOfPositionSlow(position))], offset: Int(elementOffsets[position]),
                                       message: "the grammar is too ambiguous: at this point it can continue in more than \(GrammarLimits.maximumFanOut) ways (nested optional or repeated parts that can be split in many ways)")
                }
            }
        }
        // The start state is every alternative of the start rule expanded together.
        var start: UInt64 = 0
        for alternative in alternatives[Int(root)] {
            start = cap(start + atCharacter[Int(alternative)] + atEnd[Int(alternative)])
        }
        if start > limit {
            throw GrammarError(rule: ruleNames[Int(root)], offset: ruleOffsets[Int(root)],
                               message: "the grammar is too ambiguous: its start can continue in more than \(GrammarLimits.maximumFanOut) ways")
        }
    }

    /// The rule a position belongs to (for messages only: a scan).
    private func ruleOfPositionSlow(_ position: Int) -> Int32 {
        var best: Int32 = root, bestStart: Int32 = -1
        for rule in 0..<alternatives.count {
            for start in alternatives[rule] where start <= Int32(position) && start > bestStart {
                best = Int32(rule)
                bestStart = start
            }
        }
        return best
    }
}
