import Foundation
import Imaging
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class BenchCommandTests: XCTestCase {
    static let model = CLI.sharedFixtures + "/llava-small/model"
    static let image = CLI.sharedFixtures + "/llava-small/shapes.png"

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "llava-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Visual tokens per (method, ratio) from the shared reference fixture (transformers + official merge code).
    func referenceTokens() throws -> [String: Int] {
        var out: [String: Int] = [:]
        let text = try String(contentsOfFile: CLI.sharedFixtures + "/llava-small/expected.jsonl", encoding: .utf8)
        for line in text.split(separator: "\n") {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let ratio = (o["ratio"] as! NSNumber).doubleValue
            let tokens = ((o["result"] as! [String: Any])["visual_tokens"] as! NSNumber).intValue
            out["\(o["algo"] as! String) \(ratio)"] = tokens
        }
        return out
    }

    func csvRows(_ path: String) throws -> (header: [String], rows: [[String: String]]) {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let rows = lines.dropFirst().map { line -> [String: String] in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(cells.count, header.count, line)
            return Dictionary(uniqueKeysWithValues: zip(header, cells))
        }
        return (header, rows)
    }

    func testWritesCSVJSONAndPlotWithOneRowPerSetting() throws {
        let prefix = try scratch() + "/run/bench"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "pitome,tome",
                             "--ratios", "1.0,0.95,0.9", "--keep", "32,100", "--repeat", "1", "--warmup", "0", "-n", "4",
                             "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("| method"), r.stdout)
        XCTAssertTrue(r.stdout.contains("keep=100 skipped"), r.stdout)

        // CSV: header, then baseline, pitome 0.95, 0.9, keep 32, tome 0.95, 0.9, keep 32.
        let (header, rows) = try csvRows(prefix + ".csv")
        for column in ["method", "ratio", "keep", "visual_tokens", "planned_tokens", "vision_ms", "prefill_ms", "ttft_ms",
                       "decode_tokens_per_s", "total_ms"] {
            XCTAssertTrue(header.contains(column), column)
        }
        XCTAssertEqual(rows.map { $0["method"]! }, ["none", "pitome", "pitome", "pitome", "tome", "tome", "tome"])
        XCTAssertEqual(rows.map { $0["ratio"]! }, ["1.0", "0.95", "0.9", "", "0.95", "0.9", ""])
        XCTAssertEqual(rows.map { $0["keep"]! }, ["", "", "", "32", "", "", "32"])
        let reference = try referenceTokens()
        for row in rows {
            for key in ["vision_ms", "prefill_ms", "ttft_ms", "decode_tokens_per_s", "total_ms", "ttft_speedup"] {
                let value = try XCTUnwrap(Double(row[key]!), "\(key) = \(row[key]!)")
                XCTAssertGreaterThan(value, 0, key)
            }
            XCTAssertLessThanOrEqual(Double(row["prefill_ms"]!)!, Double(row["ttft_ms"]!)!)
            XCTAssertEqual(row["visual_tokens"], row["planned_tokens"])
            XCTAssertEqual(row["generated_tokens"], "4")
            XCTAssertEqual(row["accuracy"], "")
            let tokens = Int(row["visual_tokens"]!)!
            if let keep = Int(row["keep"]!) {
                XCTAssertEqual(tokens, keep)
            } else {
                let method = row["method"] == "none" ? "pitome" : row["method"]!
                XCTAssertEqual(tokens, reference["\(method) \(Double(row["ratio"]!)!)"], "\(row)")
            }
        }

        // JSON: the same rows with every sample, and the machine.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: prefix + ".json"))) as! [String: Any]
        let machine = json["machine"] as! [String: Any]
        XCTAssertGreaterThanOrEqual((machine["threads"] as! NSNumber).intValue, 1)
        XCTAssertFalse((machine["blas_core"] as! String).isEmpty)
        XCTAssertEqual(json["model"] as? String, Self.model)
        XCTAssertNotNil(ISO8601DateFormatter().date(from: json["date"] as! String))
        let jsonRows = json["rows"] as! [[String: Any]]
        XCTAssertEqual(jsonRows.count, rows.count)
        for (j, c) in zip(jsonRows, rows) {
            XCTAssertEqual((j["visual_tokens"] as! NSNumber).stringValue, c["visual_tokens"])
            let ttft = (j["timings"] as! [String: Any])["ttft_ms"] as! [String: Any]
            XCTAssertEqual((ttft["samples"] as! [Any]).count, 1)
            XCTAssertEqual((ttft["median"] as! NSNumber).doubleValue, Double(c["ttft_ms"]!)!, accuracy: 0.01)
        }
        XCTAssertEqual((json["notes"] as! [String]).count, 2)

        // SVG: well-formed, one line per method with the baseline and two ratios.
        let svg = try SVGSummary(path: prefix + ".svg")
        XCTAssertEqual(svg.series["ttft"]?.map(\.method).sorted(), ["pitome", "tome"])
        XCTAssertEqual(svg.series["ttft"]?.map(\.points), [3, 3])
        XCTAssertNil(svg.series["accuracy"])
        XCTAssertTrue(svg.texts.contains { $0.contains("time to first token") })

        try checkPNG(prefix: prefix, output: r.stdout)
    }

    /// The PNG exists, decodes and has the SVG's size when a converter is installed; otherwise the run says why.
    func checkPNG(prefix: String, output: String) throws {
        let converters = ["rsvg-convert", "magick", "convert"].filter { name in
            (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
                .contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
        }
        if converters.isEmpty {
            XCTAssertFalse(FileManager.default.fileExists(atPath: prefix + ".png"))
            XCTAssertTrue(output.contains("no SVG converter"), output)
            return
        }
        let png = try RGBImage(contentsOfFile: prefix + ".png")
        XCTAssertEqual(png.width, 760)
        XCTAssertGreaterThan(png.height, 300)
        XCTAssertTrue(output.contains("\(prefix).png (\(converters[0]))"), output)
    }

    func testAccuracyPanelFromAQuestionFile() throws {
        let dir = try scratch()
        // The first question's accepted answer is what the model says under greedy decoding
        // (as `ask` reports it), written in upper case with a full stop; the second one is wrong.
        let askRun = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "-n", "3", "--json", "What color is the square?"])
        XCTAssertEqual(askRun.status, 0, askRun.stderr)
        let said = (try askRun.lastJSONObject())["text"] as! String
        try FileManager.default.copyItem(atPath: Self.image, toPath: dir + "/shapes.png")
        let questions = [
            #"{"question_id": 7, "image": "shapes.png", "text": "What color is the square?", "category": "color"}"#,
            #"{"question_id": "q8", "image": "shapes.png", "text": "How many shapes are there?", "category": "count"}"#,
        ]
        try (questions.joined(separator: "\n") + "\n").write(toFile: dir + "/questions.jsonl", atomically: true, encoding: .utf8)
        let key = try JSONSerialization.data(withJSONObject: ["7": [said.uppercased() + "."], "q8": ["a zebra crossing of nine words"]])
        try key.write(to: URL(fileURLWithPath: dir + "/answers.json"))

        let prefix = dir + "/acc"
        let r = try CLI.run(["bench", "--model", Self.model, "--questions", dir + "/questions.jsonl", "--annotations", dir + "/answers.json",
                             "--merge", "pitome", "--ratios", "1,0.9", "--repeat", "1", "--warmup", "0", "-n", "2",
                             "--answer-tokens", "3", "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let (_, rows) = try csvRows(prefix + ".csv")
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0]["method"], "none")
        XCTAssertEqual(rows[0]["questions"], "2")
        XCTAssertEqual(rows[0]["correct"], "1")
        XCTAssertEqual(Double(rows[0]["accuracy"]!)!, 0.5, accuracy: 1e-9)
        XCTAssertNotNil(Double(rows[1]["accuracy"]!))
        let svg = try SVGSummary(path: prefix + ".svg")
        XCTAssertEqual(svg.series["ttft"]?.map(\.method), ["pitome"])
        XCTAssertEqual(svg.series["accuracy"]?.map(\.method), ["pitome"])
        XCTAssertEqual(svg.series["accuracy"]?.map(\.points), [2])
        XCTAssertTrue(r.stdout.contains("accuracy"), r.stdout)
    }

    func testOnlyTokenBudgetsPlotAgainstTokens() throws {
        let prefix = try scratch() + "/keep"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--ratios", "1",
                             "--keep", "48,16", "--repeat", "1", "--warmup", "0", "-n", "2", "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let (_, rows) = try csvRows(prefix + ".csv")
        XCTAssertEqual(rows.map { $0["visual_tokens"]! }, ["64", "48", "16"])
        let svg = try SVGSummary(path: prefix + ".svg")
        XCTAssertEqual(svg.series["ttft"]?.map(\.points), [3])
        XCTAssertTrue(svg.texts.contains { $0.contains("visual tokens") })
    }

    func testBadRatioIsAUsageError() throws {
        let r = try CLI.run(["bench", "--image", Self.image, "--ratios", "1,1.5"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--ratios"), r.stderr)
    }
}

/// What a bench SVG holds: the polylines per panel and the text, read with XMLParser (which
/// also proves the file is well-formed XML).
final class SVGSummary: NSObject, XMLParserDelegate {
    struct Series: Equatable { var method: String; var points: Int }
    private(set) var series: [String: [Series]] = [:]
    private(set) var texts: [String] = []
    private var panel = ""
    private var inText = false

    init(path: String) throws {
        super.init()
        let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: path)))
        parser.delegate = self
        guard parser.parse() else {
            throw NSError(domain: "SVG", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path): not well-formed: \(parser.parserError.map { "\($0)" } ?? "?")"])
        }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        switch name {
        case "g" where attributes["class"] == "panel": panel = attributes["data-panel"] ?? ""
        case "polyline" where attributes["class"] == "series":
            let points = (attributes["points"] ?? "").split(separator: " ").filter { pair in
                pair.split(separator: ",").count == 2 && pair.split(separator: ",").allSatisfy { Double($0) != nil }
            }.count
            series[panel, default: []].append(Series(method: attributes["data-method"] ?? "", points: points))
        case "text":
            inText = true
            texts.append("")
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if inText { texts[texts.count - 1] += string }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" { inText = false }
        if name == "g" { panel = "" }
    }
}
