import XCTest
final class PlaceholderKernelsTests: XCTestCase {}
