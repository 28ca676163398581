#ifndef SESSIOND_CHIREDIS_SHIM_H
#define SESSIOND_CHIREDIS_SHIM_H

// hiredis 0.14.1 from Debian's libhiredis-dev. Only the protocol half is used:
// redisFormatCommandArgv to encode and the redisReader API to parse. Sockets belong to SwiftNIO.
#include <hiredis/hiredis.h>

// Swift cannot import function-like macros; these wrap the ones the reader API needs.

/// The reader's error text, valid while the reader lives (redisReaderGetError).
static inline const char *chiredis_reader_error(redisReader *reader) {
    return redisReaderGetError(reader);
}

/// Whether the reader is in its sticky error state (a protocol error: the stream cannot be resynced).
static inline int chiredis_reader_has_error(const redisReader *reader) {
    return reader->err != 0;
}

#endif
