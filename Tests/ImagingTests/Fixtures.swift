import Checkpoint
import Foundation
import Imaging
import XCTest

/// Locates `Tests/Fixtures/images` and reads the reference data written by
/// `Scripts/reference/make_image_fixtures.py`.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    struct DecodeCase: Decodable {
        let file: String
        let tensor: String
        let width: Int
        let height: Int
    }

    struct ResizeCase: Decodable {
        let source: String
        let width: Int
        let height: Int
        let filter: Int
        let png: String
    }

    struct ProcessorCase: Decodable {
        let source: String
        let mode: String
        let config: ImageProcessorConfig
        let channels: Int
        let height: Int
        let width: Int
        let png: String
        let direct: String?
    }

    struct Manifest: Decodable {
        let versions: [String: String]
        let decode: [DecodeCase]
        let resize: [ResizeCase]
        let processor: [ProcessorCase]
    }

    static func manifest() throws -> Manifest {
        let data = try Data(contentsOf: directory.appendingPathComponent("manifest.json"))
        return try JSONDecoder().decode(Manifest.self, from: data)
    }

    static func reference() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: path("reference.safetensors"))
    }

    /// A U8 tensor's bytes.
    static func bytes(_ file: SafeTensorsFile, _ name: String) throws -> [UInt8] {
        let info = try file.info(name)
        XCTAssertEqual(info.dtype, "U8", name)
        return Array(file.bytes(of: info))
    }

    /// Decoded inputs are cached: several cases share a source.
    nonisolated(unsafe) private static var cache: [String: RGBImage] = [:]
    private static let lock = NSLock()

    static func image(_ name: String) throws -> RGBImage {
        lock.lock()
        defer { lock.unlock() }
        if let hit = cache[name] { return hit }
        let image = try RGBImage(contentsOfFile: path(name))
        cache[name] = image
        return image
    }

    /// A scratch directory removed at the end of the test.
    static func temporaryDirectory(for test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("imaging-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// Largest absolute difference between two byte arrays of equal length.
func maxAbsDiff(_ a: [UInt8], _ b: [UInt8]) -> Int {
    precondition(a.count == b.count)
    var worst = 0
    for i in a.indices { worst = max(worst, abs(Int(a[i]) - Int(b[i]))) }
    return worst
}

/// Largest absolute difference between two float arrays of equal length.
func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}
