import FixtureLocations
import Foundation
import Imaging
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class BenchCommandTests: XCTestCase {
    override func setUpWithError() throws { try FixtureLocations.requireReference("llava-small") }

    static let model = CLI.referenceFixtures + "/llava-small/model"
    static let image = CLI.referenceFixtures + "/llava-small/shapes.png"

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "llava-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Visual tokens per (method, ratio) from the reference fixture (transformers + official merge code).
    func referenceTokens() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for o in try FixtureJSON.lines(CLI.referenceFixtures + "/llava-small/expected.jsonl") {
            out["\(try o.string("algo")) \(try o.double("ratio"))"] = try o.object("result").int("visual_tokens")
        }
        return out
    }

    func csvRows(_ path: String) throws -> (header: [String], rows: [[String: String]]) {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        guard let first = lines.first else { throw FixtureError("\(path) is empty") }
        let header = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let rows = lines.dropFirst().map { line -> [String: String] in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(cells.count, header.count, line)
            return Dictionary(uniqueKeysWithValues: zip(header, cells))
        }
        return (header, rows)
    }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    /// What the report says the plot shows: title, x label, and per panel the series with their points.
    struct PlotContent {
        var title: String
        var xLabel: String
        var series: [String: [(name: String, points: [[Double]])]]

        init(_ report: [String: Any]) {
            let plot = report["plot"] as! [String: Any]
            title = plot["title"] as! String
            xLabel = plot["x_label"] as! String
            series = [:]
            for panel in plot["panels"] as! [[String: Any]] {
                series[panel["id"] as! String] = (panel["series"] as! [[String: Any]]).map {
                    ($0["name"] as! String, ($0["points"] as! [[NSNumber]]).map { $0.map(\.doubleValue) })
                }
            }
        }
    }

    /// The SVG and PNG of a run: the SVG is well-formed with the plot's size, the PNG decodes to
    /// the same size, is not blank and shows every series' colour (its point markers).
    func checkPlotFiles(prefix: String, seriesCount: Int) throws {
        let svg = try SVGRoot(path: prefix + ".svg")
        XCTAssertEqual(svg.viewBox.first, 0)
        XCTAssertEqual(svg.viewBox.count, 4)
        let width = Int(svg.viewBox[2]), height = Int(svg.viewBox[3].rounded(.up))
        XCTAssertEqual(width, 760)
        let png = try assertPicture(prefix + ".png", width: width, height: height, minimumColours: 20)
        let palette = [RGB(0x1f, 0x77, 0xb4), RGB(0xd6, 0x27, 0x28), RGB(0x2c, 0xa0, 0x2c), RGB(0xff, 0x7f, 0x0e)]
        var counts = [Int](repeating: 0, count: palette.count)
        for y in 0..<png.height {
            for x in 0..<png.width {
                if let i = palette.firstIndex(of: png[x, y]) { counts[i] += 1 }
            }
        }
        for i in 0..<palette.count {
            if i < seriesCount {
                XCTAssertGreaterThan(counts[i], 20, "series \(i) is not drawn")
            } else {
                XCTAssertEqual(counts[i], 0, "series \(i) should not exist")
            }
        }
    }

    func testWritesCSVJSONAndPlotWithOneRowPerSetting() throws {
        let prefix = try scratch() + "/run/bench"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "pitome,tome",
                             "--ratios", "1.0,0.95,0.9", "--keep", "32,100", "--repeat", "2", "--warmup", "0", "-n", "4",
                             "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("| method"), r.stdout)
        XCTAssertTrue(r.stdout.contains("keep=100 skipped"), r.stdout)
        XCTAssertFalse(r.stderr.contains("warning"), r.stderr)

        // CSV: header, then baseline, pitome 0.95, 0.9, keep 32, tome 0.95, 0.9, keep 32.
        let (header, rows) = try csvRows(prefix + ".csv")
        for column in ["method", "ratio", "keep", "visual_tokens", "planned_tokens", "vision_ms", "prefill_ms", "ttft_ms",
                       "ttft_min_ms", "ttft_max_ms", "decode_tokens_per_s", "total_ms"] {
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
            XCTAssertLessThanOrEqual(Double(row["ttft_min_ms"]!)!, Double(row["ttft_ms"]!)!)
            XCTAssertLessThanOrEqual(Double(row["ttft_ms"]!)!, Double(row["ttft_max_ms"]!)!)
            XCTAssertEqual(row["repeats"], "2")
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
        // The table shows each row's spread.
        XCTAssertTrue(r.stdout.contains("ttft min–max"), r.stdout)

        // JSON: the same rows with every sample, the machine, and the interleaved run order:
        // round 1 runs every setting once in row order, then round 2.
        let json = try json(prefix + ".json")
        let machine = json["machine"] as! [String: Any]
        XCTAssertGreaterThanOrEqual((machine["threads"] as! NSNumber).intValue, 1)
        XCTAssertFalse((machine["blas_core"] as! String).isEmpty)
        XCTAssertEqual(json["model"] as? String, Self.model)
        XCTAssertEqual(json["schedule"] as? String, "interleaved")
        XCTAssertNotNil(ISO8601DateFormatter().date(from: json["date"] as! String))
        let jsonRows = json["rows"] as! [[String: Any]]
        XCTAssertEqual(jsonRows.count, rows.count)
        for (i, (j, c)) in zip(jsonRows, rows).enumerated() {
            XCTAssertEqual((j["visual_tokens"] as! NSNumber).stringValue, c["visual_tokens"])
            let ttft = (j["timings"] as! [String: Any])["ttft_ms"] as! [String: Any]
            XCTAssertEqual((ttft["samples"] as! [Any]).count, 2)
            XCTAssertEqual((ttft["median"] as! NSNumber).doubleValue, Double(c["ttft_ms"]!)!, accuracy: 0.01)
            XCTAssertEqual((ttft["min"] as! NSNumber).doubleValue, Double(c["ttft_min_ms"]!)!, accuracy: 0.01)
            XCTAssertEqual((ttft["max"] as! NSNumber).doubleValue, Double(c["ttft_max_ms"]!)!, accuracy: 0.01)
            XCTAssertEqual((j["run_order"] as! [NSNumber]).map(\.intValue), [i, i + rows.count])
        }
        XCTAssertEqual((json["notes"] as! [String]).count, 2)

        // The plot: with budgets, against the visual tokens; each method's budget rows get their
        // own line next to its ratio rows, every line starting at the unmerged baseline.
        let plot = PlotContent(json)
        XCTAssertEqual(plot.title, "LLaVA time to first token vs visual tokens")
        XCTAssertTrue(plot.xLabel.hasPrefix("visual tokens"), plot.xLabel)
        let ttft = try XCTUnwrap(plot.series["ttft"])
        XCTAssertEqual(ttft.map(\.name), ["pitome", "pitome keep", "tome", "tome keep"])
        XCTAssertEqual(ttft.map { $0.points.map { $0[0] } },
                       [[64, 40, 23], [64, 32], [64, 40, 23], [64, 32]])
        XCTAssertEqual(ttft[1].points[1][1], Double(rows[3]["ttft_ms"]!)!, accuracy: 0.01)
        XCTAssertNil(plot.series["accuracy"])
        try checkPlotFiles(prefix: prefix, seriesCount: 4)
    }

    func testOnlyRatiosPlotAgainstTheRatio() throws {
        let prefix = try scratch() + "/ratio"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "pitome,tome",
                             "--ratios", "1,0.95,0.9", "--repeat", "1", "--warmup", "0", "-n", "2", "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let plot = PlotContent(try json(prefix + ".json"))
        XCTAssertEqual(plot.title, "LLaVA time to first token vs merge ratio")
        XCTAssertTrue(plot.xLabel.hasPrefix("merge ratio"), plot.xLabel)
        XCTAssertEqual(plot.series["ttft"]?.map(\.name), ["pitome", "tome"])
        XCTAssertEqual(plot.series["ttft"]?.map { $0.points.map { $0[0] } }, [[1, 0.95, 0.9], [1, 0.95, 0.9]])
        try checkPlotFiles(prefix: prefix, seriesCount: 2)
    }

    func testOnlyTokenBudgetsPlotAgainstTokens() throws {
        let prefix = try scratch() + "/keep"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--ratios", "1",
                             "--keep", "48,16", "--repeat", "1", "--warmup", "0", "-n", "2", "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let (_, rows) = try csvRows(prefix + ".csv")
        XCTAssertEqual(rows.map { $0["visual_tokens"]! }, ["64", "48", "16"])
        let plot = PlotContent(try json(prefix + ".json"))
        XCTAssertEqual(plot.title, "LLaVA time to first token vs visual tokens")
        XCTAssertFalse(plot.title.contains("ratio") || plot.xLabel.contains("ratio"), plot.title + " / " + plot.xLabel)
        XCTAssertEqual(plot.series["ttft"]?.map(\.name), ["tome"])
        XCTAssertEqual(plot.series["ttft"]?.map { $0.points.map { $0[0] } }, [[64, 48, 16]])
        try checkPlotFiles(prefix: prefix, seriesCount: 1)
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
        let plot = PlotContent(try json(prefix + ".json"))
        XCTAssertEqual(plot.series["ttft"]?.map(\.name), ["pitome"])
        XCTAssertEqual(plot.series["accuracy"]?.map(\.name), ["pitome"])
        XCTAssertEqual(plot.series["accuracy"]?.first?.points.first?[1], 50)
        XCTAssertTrue(r.stdout.contains("accuracy"), r.stdout)
        let svg = try SVGRoot(path: prefix + ".svg")
        try assertPicture(prefix + ".png", width: 760, height: Int(svg.viewBox[3].rounded(.up)), minimumColours: 20)
    }

    /// `bench --questions` and `eval` find the images by the same rule: without --image-folder,
    /// next to the question file, else in its images/ folder.
    func testBenchAndEvalFindImagesBesideTheQuestionsOrInImages() throws {
        let dir = try scratch()
        try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.image, toPath: dir + "/images/in-images.png")
        try FileManager.default.copyItem(atPath: Self.image, toPath: dir + "/beside.png")
        let questions = [
            #"{"question_id": 1, "image": "in-images.png", "text": "What color is the square?"}"#,
            #"{"question_id": 2, "image": "beside.png", "text": "What color is the circle?"}"#,
        ]
        try (questions.joined(separator: "\n") + "\n").write(toFile: dir + "/questions.jsonl", atomically: true, encoding: .utf8)
        try #"{"1": ["red"], "2": ["blue"]}"#.write(toFile: dir + "/key.json", atomically: true, encoding: .utf8)
        let bench = try CLI.run(["bench", "--model", Self.model, "--questions", dir + "/questions.jsonl", "--annotations",
                                 dir + "/key.json", "--merge", "tome", "--ratios", "1", "--repeat", "1", "--warmup", "0",
                                 "-n", "1", "--answer-tokens", "2", "--out", dir + "/b"], timeout: 300)
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertEqual((try json(dir + "/b.json"))["image"] as? String, dir + "/images/in-images.png")
        let eval = try CLI.run(["eval", "--model", Self.model, "--questions", dir + "/questions.jsonl",
                                "--answers", dir + "/answers.jsonl", "-n", "2", "--quiet"], timeout: 300)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let answers = try String(contentsOfFile: dir + "/answers.jsonl", encoding: .utf8)
        XCTAssertEqual(answers.split(separator: "\n").count, 2)
        XCTAssertFalse(answers.contains("\"error\""), answers)
        // A missing image is named where the rule looked first.
        try FileManager.default.removeItem(atPath: dir + "/beside.png")
        let missing = try CLI.run(["bench", "--model", Self.model, "--questions", dir + "/questions.jsonl", "--annotations",
                                   dir + "/key.json", "--merge", "tome", "--ratios", "1", "--repeat", "1", "--warmup", "0",
                                   "-n", "1", "--out", dir + "/c"], timeout: 300)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains(dir + "/beside.png"), missing.stderr)
    }

    func testAPlotThatCannotBeWrittenIsAWarning() throws {
        let prefix = try scratch() + "/blocked"
        // A folder where the PNG should go: cairo cannot write it.
        try FileManager.default.createDirectory(atPath: prefix + ".png", withIntermediateDirectories: true)
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--ratios", "1,0.9",
                             "--repeat", "1", "--warmup", "0", "-n", "2", "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let warnings = r.stderrLines.filter { $0.hasPrefix("llava: warning:") }
        XCTAssertEqual(warnings.count, 1, r.stderr)
        XCTAssertTrue(warnings.first?.contains(prefix + ".png") == true, r.stderr)
        XCTAssertFalse(r.stderr.contains("llava: error"), r.stderr)
        XCTAssertEqual(try csvRows(prefix + ".csv").rows.count, 2)
        XCTAssertEqual((try json(prefix + ".json")["rows"] as! [Any]).count, 2)
    }

    func testAPyTorchComparisonWithoutTorchIsAWarning() throws {
        let dir = try scratch()
        // A Python whose interpreter has no torch: it fails the way python3 does.
        let python = dir + "/python-without-torch"
        try """
        #!/bin/sh
        echo 'Traceback (most recent call last):' >&2
        echo '  File "pytorch_bench.py", line 1, in <module>' >&2
        echo "ModuleNotFoundError: No module named 'torch'" >&2
        exit 1

        """.write(toFile: python, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python)
        let prefix = dir + "/pt"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--ratios", "1,0.9",
                             "--repeat", "1", "--warmup", "0", "-n", "2", "--compare-pytorch", "--python", python,
                             "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let warnings = r.stderrLines.filter { $0.contains("warning") }
        XCTAssertEqual(warnings.count, 1, r.stderr)
        XCTAssertTrue(warnings.first.map { $0.hasPrefix("llava: warning:") && $0.contains("No module named 'torch'") } == true, r.stderr)
        XCTAssertFalse(r.stderr.contains("Traceback"), r.stderr)
        XCTAssertTrue(try json(prefix + ".json")["pytorch"] is NSNull)
        XCTAssertEqual(try csvRows(prefix + ".csv").rows.count, 2)
        try assertPicture(prefix + ".png", width: 760, minimumColours: 20)
    }

    /// Text is drawn with cairo's own font selection; with no font installed at all, cairo falls
    /// back to its built-in font and the plot is still written.
    func testThePlotIsWrittenWithoutAnyFont() throws {
        let dir = try scratch()
        let config = dir + "/fonts.conf"
        try #"<?xml version="1.0"?><fontconfig></fontconfig>"#.write(toFile: config, atomically: true, encoding: .utf8)
        let prefix = dir + "/nofont"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "tome", "--ratios", "1,0.9",
                             "--repeat", "1", "--warmup", "0", "-n", "2", "--out", prefix], timeout: 300,
                            environment: ["FONTCONFIG_FILE": config, "XDG_CACHE_HOME": dir + "/cache", "HOME": dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("warning"), r.stderr)
        try checkPlotFiles(prefix: prefix, seriesCount: 1)
    }

    /// --threads 1,2: every setting at both counts, rows setting by setting, the stage times per
    /// layer and summed, and a scaling block per setting (the report's structure, not its times).
    func testThreadListGivesStageTimesAndAScalingTable() throws {
        let prefix = try scratch() + "/threads"
        let r = try CLI.run(["bench", "--model", Self.model, "--image", Self.image, "--merge", "pitome", "--ratios", "1,0.9",
                             "--threads", "1,2", "--repeat", "2", "--warmup", "0", "-n", "3", "--out", prefix], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("| stage (ms, median)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("scaling of none from 1 thread"), r.stdout)
        XCTAssertTrue(r.stdout.contains("×2 / eff."), r.stdout)
        XCTAssertTrue(r.stdout.contains("alone @2 ms"), r.stdout)
        XCTAssertTrue(r.stdout.contains("16 threads could make it at most"), r.stdout)

        let (_, rows) = try csvRows(prefix + ".csv")
        XCTAssertEqual(rows.map { $0["method"]! }, ["none", "none", "pitome", "pitome"])
        XCTAssertEqual(rows.map { $0["threads"]! }, ["1", "2", "1", "2"])
        let json = try json(prefix + ".json")
        XCTAssertEqual((json["thread_counts"] as! [NSNumber]).map(\.intValue), [1, 2])
        let jsonRows = json["rows"] as! [[String: Any]]
        XCTAssertEqual(jsonRows.map { ($0["threads"] as! NSNumber).intValue }, [1, 2, 1, 2])
        // Interleaved: round 1 runs every (setting, count) once, then round 2.
        XCTAssertEqual(jsonRows.map { ($0["run_order"] as! [NSNumber]).map(\.intValue) }, [[0, 4], [1, 5], [2, 6], [3, 7]])
        let layers = 11  // the fixture's tower runs its layers up to the feature layer −2 of 12
        for (i, row) in jsonRows.enumerated() {
            let stages = row["stages"] as! [String: Any]
            let totals = stages["totals_ms"] as! [String: [String: Any]]
            var expected: Set<String> = ["embeddings", "attention", "mlp", "projector", "prefill", "lm_head", "decode", "sampling"]
            if i >= 2 { expected.formUnion(["merge", "merge.similarity", "merge.energy", "merge.matching", "merge.apply"]) }
            XCTAssertEqual(Set(totals.keys), expected, "row \(i)")
            // The time on one thread: per stage, never more than the stage's time.
            let alone = stages["one_thread_totals_ms"] as! [String: [String: Any]]
            XCTAssertEqual(Set(alone.keys), expected, "row \(i)")
            for (name, stat) in alone {
                let all = (totals[name]!["samples"] as! [NSNumber]).map(\.doubleValue)
                for (a, w) in zip((stat["samples"] as! [NSNumber]).map(\.doubleValue), all) {
                    XCTAssertLessThanOrEqual(a, w + 1e-3, name)
                }
            }
            let timings = row["timings"] as! [String: [String: Any]]
            XCTAssertLessThanOrEqual((timings["ttft_one_thread_ms"]!["median"] as! NSNumber).doubleValue,
                                     (timings["ttft_ms"]!["max"] as! NSNumber).doubleValue * 1.01 + 0.01)
            for (name, stat) in totals {
                XCTAssertEqual((stat["samples"] as! [Any]).count, 2, name)
                XCTAssertGreaterThanOrEqual((stat["median"] as! NSNumber).doubleValue, 0, name)
            }
            let perLayer = stages["per_layer"] as! [[String: Any]]
            let attention = perLayer.filter { $0["stage"] as? String == "attention" }
            XCTAssertEqual(attention.compactMap { ($0["layer"] as? NSNumber)?.intValue }, Array(0..<layers))
            XCTAssertEqual(perLayer.filter { $0["stage"] as? String == "mlp" }.count, layers)
            XCTAssertEqual(attention.first?["label"] as? String, "vision.layer.0.attention")
            XCTAssertTrue(perLayer.contains { $0["label"] as? String == "lm_head" && $0["layer"] is NSNull })
        }
        let scaling = json["scaling"] as! [[String: Any]]
        XCTAssertEqual(scaling.count, 2)
        for block in scaling {
            XCTAssertEqual((block["threads"] as! [NSNumber]).map(\.intValue), [1, 2])
            let lines = block["stages"] as! [[String: Any]]
            XCTAssertTrue(lines.contains { $0["stage"] as? String == "ttft_ms" })
            XCTAssertTrue(lines.contains { $0["stage"] as? String == "attention" })
            for line in lines {
                let ms = (line["ms"] as! [NSNumber]).map(\.doubleValue)
                let speedup = (line["speedup"] as! [NSNumber]).map(\.doubleValue)
                let efficiency = (line["efficiency"] as! [NSNumber]).map(\.doubleValue)
                XCTAssertEqual(ms.count, 2)
                XCTAssertEqual(speedup[0], 1, accuracy: 1e-9)
                // (The report rounds to 3 decimals: compare ms only where they are large.)
                if ms[1] > 1 { XCTAssertEqual(speedup[1], ms[0] / ms[1], accuracy: 0.01 * speedup[1] + 1e-3) }
                XCTAssertEqual(efficiency[1], speedup[1] / 2, accuracy: 2e-3)
                if let alone = line["one_thread_ms"] as? [NSNumber] {
                    XCTAssertEqual(alone.count, 2)
                    // (Measured over spans a few microseconds apart from the stage's.)
                    for (a, w) in zip(alone.map(\.doubleValue), ms) { XCTAssertLessThanOrEqual(a, w * 1.01 + 0.01, "\(line["stage"]!)") }
                } else {
                    XCTAssertTrue(line["one_thread_ms"] is NSNull)
                }
            }
        }
    }

    func testThreadListsAreForBenchOnlyAndCannotRepeat() throws {
        let repeated = try CLI.run(["bench", "--image", Self.image, "--threads", "2,2"])
        XCTAssertEqual(repeated.status, 1, repeated.stderr)
        XCTAssertEqual(repeated.stderrLines, ["llava: error: --threads lists a count twice: 2,2"])
        let ask = try CLI.run(["ask", "--model", Self.model, "--image", Self.image, "--threads", "1,2", "Hi"])
        XCTAssertEqual(ask.status, 1, ask.stderr)
        XCTAssertEqual(ask.stderrLines, ["llava: error: --threads takes one count here (lists of counts are for llava bench), got 1,2"])
    }

    func testBadRatioIsAUsageError() throws {
        let r = try CLI.run(["bench", "--image", Self.image, "--ratios", "1,1.5"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--ratios"), r.stderr)
    }
}

/// The root of an SVG file, read with XMLParser (which also proves the file is well-formed XML).
final class SVGRoot: NSObject, XMLParserDelegate {
    private(set) var viewBox: [Double] = []
    private(set) var elements = 0

    init(path: String) throws {
        super.init()
        let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: path)))
        parser.delegate = self
        guard parser.parse(), elements > 1 else {
            throw NSError(domain: "SVG", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path): not a well-formed SVG: \(parser.parserError.map { "\($0)" } ?? "empty")"])
        }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if elements == 0 {
            guard name == "svg" else { return parser.abortParsing() }
            viewBox = (attributes["viewBox"] ?? "").split(separator: " ").compactMap { Double($0) }
        }
        elements += 1
    }
}
