import XCTest
final class PlaceholderLLaVATests: XCTestCase {}
