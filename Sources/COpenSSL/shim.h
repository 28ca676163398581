#ifndef SESSIOND_COPENSSL_SHIM_H
#define SESSIOND_COPENSSL_SHIM_H

// libcrypto from Debian's libssl-dev: the CSPRNG (RAND_bytes), SHA-256 and CRYPTO_memcmp.
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>

#endif
