import Foundation

/// Download progress on stderr: a redrawn bar when stderr is a terminal, otherwise a plain line every 15 seconds
/// and one at the end, so logs stay readable.
public final class ProgressBar {
    private let label: String
    private let total: Int?
    private let interactive: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastPlainTime = Date()
    private var startBytes: Int
    private var finished = false

    /// A bar for `label` (a file name) of `total` bytes (nil when unknown), starting at `startBytes` (a resumed
    /// download). `interactive` defaults to whether stderr is a terminal.
    public init(label: String, total: Int?, startBytes: Int = 0, interactive: Bool? = nil) {
        self.label = label
        self.total = total
        self.startBytes = startBytes
        self.interactive = interactive ?? FileSystem.stderrIsTerminal
    }

    /// Reports `bytes` done so far.
    public func update(_ bytes: Int) {
        let now = Date()
        if interactive {
            guard now.timeIntervalSince(lastDraw) >= 0.1 else { return }
            lastDraw = now
            FileHandle.standardError.write(Data(("\r" + line(bytes, now: now) + "\u{1B}[K").utf8))
        } else {
            // Logs: a line every 15 seconds at most; short downloads show only the final line.
            guard now.timeIntervalSince(lastPlainTime) >= 15 else { return }
            lastPlainTime = now
            FileHandle.standardError.write(Data((line(bytes, now: now) + "\n").utf8))
        }
    }

    /// Ends the bar at `bytes` (prints the final state once).
    public func finish(_ bytes: Int) {
        guard !finished else { return }
        finished = true
        let text = line(bytes, now: Date())
        FileHandle.standardError.write(Data(((interactive ? "\r" : "") + text + (interactive ? "\u{1B}[K\n" : "\n")).utf8))
    }

    private func line(_ bytes: Int, now: Date) -> String {
        let elapsed = max(now.timeIntervalSince(start), 0.001)
        let rate = Double(max(0, bytes - startBytes)) / elapsed
        let speed = "\(Self.format(Int(rate)))/s"
        guard let total, total > 0 else { return "  \(label): \(Self.format(bytes)) \(speed)" }
        let fraction = min(1, Double(bytes) / Double(total))
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = String(format: "%3d%%", Int(fraction * 100))
        return "  \(label) [\(bar)] \(percent) \(Self.format(bytes))/\(Self.format(total)) \(speed)"
    }

    /// A byte count for people: "512 B", "93.4 MB" (decimal units, as download sizes are usually given).
    public static func format(_ bytes: Int) -> String {
        let value = Double(bytes)
        switch value {
        case ..<1_000: return "\(bytes) B"
        case ..<1_000_000: return String(format: "%.1f kB", value / 1e3)
        case ..<1_000_000_000: return String(format: "%.1f MB", value / 1e6)
        default: return String(format: "%.2f GB", value / 1e9)
        }
    }
}
