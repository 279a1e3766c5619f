import ArgumentParser
import Foundation
import Kernels
import LLaVA
import TokenMerging
import VQAEval

/// The --json output of `llava ask`.
struct AskReport: Encodable {
    let result: AskResult
    let model: String
    let image: String
    let template: String
    let merge: VisionMergeSettings
    let seed: UInt64
    let temperature: Float
    let loadMs: Double
    let threads: Int
    let quantization: String
    let peakRSSMiB: Double

    enum CodingKeys: String, CodingKey {
        case text, promptIds = "prompt_ids", generatedIds = "generated_ids", visualTokens = "visual_tokens"
        case stopReason = "stop_reason", timings, model, image, template, merge, seed, temperature, threads
        case quantization, peakRSSMiB = "peak_rss_mib", blasCore = "blas_core", kernels
    }

    struct TimingsJSON: Encodable {
        let t: AskTimings
        let loadMs: Double
        enum CodingKeys: String, CodingKey {
            case loadMs = "load_ms", imageMs = "image_ms", visionMs = "vision_ms", prefillMs = "prefill_ms", ttftMs = "ttft_ms"
            case decodeMs = "decode_ms", decodeTokensPerS = "decode_tokens_per_s", totalMs = "total_ms"
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rounded(loadMs), forKey: .loadMs)
            try c.encode(rounded(t.imageMs), forKey: .imageMs)
            try c.encode(rounded(t.visionMs), forKey: .visionMs)
            try c.encode(rounded(t.prefillMs), forKey: .prefillMs)
            try c.encode(rounded(t.ttftMs), forKey: .ttftMs)
            try c.encode(rounded(t.decodeMs), forKey: .decodeMs)
            try c.encode(rounded(t.decodeTokensPerS), forKey: .decodeTokensPerS)
            try c.encode(rounded(t.totalMs), forKey: .totalMs)
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(result.text, forKey: .text)
        try c.encode(result.promptIds, forKey: .promptIds)
        try c.encode(result.generatedIds, forKey: .generatedIds)
        try c.encode(result.visualTokens, forKey: .visualTokens)
        try c.encode(result.stopReason, forKey: .stopReason)
        try c.encode(TimingsJSON(t: result.timings, loadMs: loadMs), forKey: .timings)
        try c.encode(model, forKey: .model)
        try c.encode(image, forKey: .image)
        try c.encode(template, forKey: .template)
        try c.encode(merge, forKey: .merge)
        try c.encode(seed, forKey: .seed)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(threads, forKey: .threads)
        try c.encode(quantization, forKey: .quantization)
        try c.encode(rounded(peakRSSMiB), forKey: .peakRSSMiB)
        try c.encode(Threads.blasCoreName, forKey: .blasCore)
        try c.encode(Threads.kernelInstructionSet, forKey: .kernels)
    }

    func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

/// Checks merge settings made from flags: a broken rule is a usage error.
func validateMergeSettings(_ settings: VisionMergeSettings) throws {
    do {
        try settings.validate()
    } catch {
        throw mergeFlagError(error)
    }
}

/// A merge-settings error in the words of the flags that set them.
func mergeFlagError(_ error: Error, ratioFlag: String = "--ratio", keepFlag: String = "--keep") -> ValidationError {
    switch error as? MergeError {
    case .invalidRatio(let ratio)?: return invalid(ratioFlag, "in (0, 1]", ratio)
    case .invalidBudget(let keep)?: return invalid(keepFlag, "at least 1", keep)
    case .ratioAndKeep?: return ValidationError("give either \(ratioFlag) or \(keepFlag), not both")
    case .missingAmount(let method)?: return ValidationError("--merge \(method.rawValue) needs \(ratioFlag) or \(keepFlag)")
    case .amountWithoutMethod?: return ValidationError("\(ratioFlag)/\(keepFlag) need a merge method (--merge pitome, tome, ...)")
    case .everyLayerWithoutPiToMe?: return ValidationError("--pitome-every-layer only applies to --merge pitome")
    case .invalidFastVLayer(let k, nil)?: return invalid("--fastv-layer", "at least 1", k)
    case .fastvLayerWithoutFastV?: return ValidationError("--fastv-layer only applies to --merge fastv")
    default: return ValidationError("merge settings: \(error)")
    }
}

/// The merge settings as a JSON object for `JSONSerialization` reports.
func jsonObject(_ settings: VisionMergeSettings) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: JSONEncoder().encode(settings)) as! [String: Any]
}

extension JSONValue {
    /// The merge settings as answer-file metadata: their JSON form, with the ratio always a
    /// number with a fraction (as answer files have always recorded it, so that a file written
    /// by an earlier version is resumed rather than taken for other settings).
    init(mergeSettings settings: VisionMergeSettings) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard case .object(var object) = try JSONValue.parse(String(decoding: try encoder.encode(settings), as: UTF8.self)) else {
            throw CLIError("the merge settings did not encode as a JSON object")
        }
        if case .int(let ratio)? = object["ratio"] { object["ratio"] = .double(Double(ratio)) }
        self = .object(object)
    }
}

/// One line on stderr about an optional step that was skipped; the run goes on.
func printWarning(_ message: String) {
    let line = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    FileHandle.standardError.write(Data("llava: warning: \(line)\n".utf8))
}

/// llama.cpp-style timing block on stderr.
func printTimingSummary(_ r: AskResult, loadMs: Double, settings: VisionMergeSettings, fullTokens: Int) {
    let t = r.timings
    let prompt = r.promptIds.count
    let decoded = max(0, r.generatedIds.count - 1)
    func f(_ x: Double, _ w: Int = 9) -> String { String(format: "%\(w).2f", x) }
    let merged = settings.options.method.site == .decoder ? " (\(settings.label), cut inside the language model)"
        : settings.isActive ? " (\(settings.label))" : ""
    printErr("")
    printErr("llava: load time       = \(f(loadMs)) ms")
    printErr("llava: image           = \(f(t.imageMs)) ms (decode + preprocess)")
    printErr("llava: vision          = \(f(t.visionMs)) ms / \(fullTokens) → \(r.visualTokens) visual tokens\(merged)")
    printErr("llava: prompt eval     = \(f(t.prefillMs)) ms / \(prompt) tokens (\(f(t.prefillMs / Double(max(prompt, 1)), 7)) ms per token, \(f(Double(prompt) / max(t.prefillMs, 1e-9) * 1000, 8)) tokens per second)")
    printErr("llava: eval            = \(f(t.decodeMs)) ms / \(decoded) runs   (\(f(decoded > 0 ? t.decodeMs / Double(decoded) : 0, 7)) ms per token, \(f(t.decodeTokensPerS, 8)) tokens per second)")
    printErr("llava: time to first token = \(f(t.ttftMs)) ms, total = \(f(t.totalMs)) ms, threads = \(Threads.count), stop = \(r.stopReason.rawValue)")
    printErr("llava: peak memory     = \(f(ProcessMemory.peakResidentMiB)) MiB, BLAS core \(Threads.blasCoreName), kernels \(Threads.kernelInstructionSet)")
}

/// An aligned Markdown table (llama-bench style): the first column left-aligned, the others
/// right-aligned.
func markdownTable(header: [String], rows: [[String]]) -> String {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
    func line(_ cells: [String]) -> String {
        "| " + cells.enumerated().map { i, c in
            let pad = String(repeating: " ", count: widths[i] - c.count)
            return i == 0 ? c + pad : pad + c
        }.joined(separator: " | ") + " |"
    }
    let rule = "| " + widths.enumerated().map { i, w in
        i == 0 ? String(repeating: "-", count: w) : String(repeating: "-", count: w - 1) + ":"
    }.joined(separator: " | ") + " |"
    return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
}
