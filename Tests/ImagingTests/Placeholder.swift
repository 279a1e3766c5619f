import XCTest
final class PlaceholderImagingTests: XCTestCase {}
