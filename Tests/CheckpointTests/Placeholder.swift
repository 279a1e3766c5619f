import XCTest
final class PlaceholderCheckpointTests: XCTestCase {}
