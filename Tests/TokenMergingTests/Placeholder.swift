import XCTest
final class PlaceholderTokenMergingTests: XCTestCase {}
