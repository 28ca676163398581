import NIOCore

/// Notices a request line longer than the HTTP decoder takes, so that a request head too large for
/// the decoder can be answered for what it is: NIO's decoder reports one `headerOverflow` for an
/// over-long target (414) and for over-large header fields (431) alike.
///
/// Sits in front of the decoder and passes every byte on unchanged, measuring lines as they pass.
/// A request line begins with a method (a token) and a space; a header line begins with a name
/// (a token) and a colon, and a name holds no space. Once a line that began as a request line has
/// grown past the decoder's limit, the decoder refuses that request (no connection outlives a
/// refused head, so this is never reset).
final class RequestLineWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// NIO's decoder's limit on one field (the target counts as one): 80 KiB.
    static let decoderFieldLimit = 80 * 1024
    /// Enough of a line to see past any method name.
    private static let kept = 24

    /// The first bytes of the line being received.
    private var lineStart: [UInt8] = []
    private var lineLength = 0
    /// A line that began as a request line grew past ``decoderFieldLimit``.
    private(set) var sawOverlongRequestLine = false

    init() {
        lineStart.reserveCapacity(Self.kept)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        unwrapInboundIn(data).withUnsafeReadableBytes { bytes in
            var position = 0
            while position < bytes.count {
                let end = bytes[position...].firstIndex(of: 0x0A) ?? bytes.count
                extendLine(with: UnsafeRawBufferPointer(rebasing: bytes[position..<end]))
                if end < bytes.count {
                    lineStart.removeAll(keepingCapacity: true)
                    lineLength = 0
                }
                position = end + 1
            }
        }
        context.fireChannelRead(data)
    }

    private func extendLine(with bytes: UnsafeRawBufferPointer) {
        if lineStart.count < Self.kept { lineStart.append(contentsOf: bytes.prefix(Self.kept - lineStart.count)) }
        lineLength += bytes.count
        if !sawOverlongRequestLine, lineLength > Self.decoderFieldLimit, Self.isRequestLine(lineStart) {
            sawOverlongRequestLine = true
        }
    }

    /// Whether a line beginning with `start` is a request line: a token, then a space.
    static func isRequestLine(_ start: [UInt8]) -> Bool {
        guard let space = start.firstIndex(of: UInt8(ascii: " ")), space > 0 else { return false }
        return start[..<space].allSatisfy(isTokenCharacter)
    }

    /// RFC 9110's `tchar`.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
