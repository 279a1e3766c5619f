// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top:
//   native libraries (OpenBLAS, stb, libjpeg, SentencePiece, cairo for plots) and the C kernels
//   Kernels (matrices, matrix products, norms, attention)  ← TokenMerging (no model imports)
//   Checkpoint (safetensors, config.json)  Tokenizer  Imaging  VQAEval (question/answer files, scoring)
//   LLaVA (CLIP vision tower, projector, Llama decoder, generation; run settings, question answerer)
//   LlavaBenchmark (timing and accuracy across merge settings, with VQAEval's scoring)
//   LlavaCLI (the `llava` executable; `llava serve` on Hummingbird, swift-log and swift-metrics with Prometheus)
let package = Package(
    name: "llava-swift",
    products: [
        .library(name: "LLaVA", targets: ["LLaVA"]),
        .library(name: "TokenMerging", targets: ["TokenMerging"]),
        .executable(name: "llava", targets: ["LlavaCLI"]),
        .executable(name: "kernel-bench", targets: ["KernelBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(name: "COpenBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .systemLibrary(name: "CStb", path: "Sources/CStb"),
        .systemLibrary(name: "CSystemZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCairo", path: "Sources/CCairo"),
        .systemLibrary(name: "CEditLine", path: "Sources/CEditLine"),
        .target(name: "CJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        .target(
            name: "CSentencePiece",
            cxxSettings: [.unsafeFlags(["-std=c++17"])],
            linkerSettings: [.linkedLibrary("sentencepiece")]
        ),
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        .target(name: "FileAccess"),
        .target(name: "Kernels", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "Checkpoint", dependencies: ["Kernels", "FileAccess"]),
        .target(name: "Tokenizer", dependencies: ["CSentencePiece", "FileAccess"]),
        .target(name: "Imaging", dependencies: ["CStb", "CJPEG", "CSystemZlib", "FileAccess", "Kernels"]),
        .target(name: "TokenMerging", dependencies: ["Kernels"]),
        .target(name: "VQAEval", dependencies: ["FileAccess", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .target(
            name: "LLaVA",
            dependencies: ["Kernels", "Checkpoint", "Tokenizer", "Imaging", "TokenMerging", "FileAccess",
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "LlavaBenchmark", dependencies: ["LLaVA", "VQAEval", "Kernels", "Checkpoint", "Imaging", "TokenMerging"]),
        .executableTarget(name: "KernelBench", dependencies: ["Kernels", "TokenMerging"]),
        .executableTarget(
            name: "LlavaCLI",
            dependencies: ["LLaVA", "LlavaBenchmark", "VQAEval", "CCairo", "CEditLine",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        // Test support for every test target: fixture paths, fixture JSON without force casts, array assertions.
        .target(name: "FixtureLocations", path: "Tests/FixtureLocations"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "FixtureLocations"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "FixtureLocations"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Checkpoint", "FixtureLocations"]),
        .testTarget(name: "TokenMergingTests", dependencies: ["TokenMerging", "Checkpoint", "FixtureLocations"]),
        .testTarget(name: "LLaVATests", dependencies: ["LLaVA", "Tokenizer", "TokenMerging", "FixtureLocations"]),
        .testTarget(name: "CLITests", dependencies: ["LlavaCLI", "Checkpoint", "Imaging", "FixtureLocations",
                                                  .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .testTarget(name: "LlavaBenchmarkTests", dependencies: ["LlavaBenchmark", "LLaVA", "TokenMerging"]),
        .testTarget(name: "VQAEvalTests", dependencies: ["VQAEval", "FixtureLocations"]),
    ],
    swiftLanguageModes: [.v5]
)
